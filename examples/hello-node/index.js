exports.handler = async (event) => {
  const name = event.query.name || 'world';
  return { hello: name, runtime: 'node' };
};
