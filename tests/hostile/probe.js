// A hostile Node handler: ?try=NAME&path=P tries one forbidden thing and reports the error code the kernel gave.
const fs = require('fs');
const { spawnSync } = require('child_process');

function attempt(name, path) {
  try {
    switch (name) {
      case 'read':
        return `read ${fs.readFileSync(path).length} bytes`;
      case 'read_buffer':
        return `read ${fs.readFileSync(Buffer.from(path)).length} bytes`;
      case 'read_url':
        return `read ${fs.readFileSync(new URL(`file://${path}`)).length} bytes`;
      case 'list':
        return `listed ${fs.readdirSync(path).length} entries`;
      case 'write':
        fs.writeFileSync(path, 'pwned');
        return 'written';
      case 'exec': {
        const r = spawnSync(path, [], { encoding: 'utf8' });
        return r.error ? r.error.code : r.stdout;
      }
      case 'spin': {
        for (;;) {} // eslint-disable-line no-empty
      }
      default:
        return 'unknown attempt';
    }
  } catch (err) {
    return err.code || String(err);
  }
}

exports.handler = (event) => ({ result: attempt(event.query.try, event.query.path), ppid: process.ppid });
