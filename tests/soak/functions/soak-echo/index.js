// Echoes a POSTed JSON body back, parsed and re-encoded.
exports.handler = async (event) => ({ echo: JSON.parse(event.body || 'null') });
