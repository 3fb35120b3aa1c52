exports.handler = async () => ({ hello: 'world', runtime: 'node' });
