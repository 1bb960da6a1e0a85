import { createServer } from 'node:http';
const mode = process.argv[3];
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (mode === 'await') { await Promise.resolve(); await Promise.resolve(); await Promise.resolve(); }
    if (mode === 'immediate') await new Promise((r) => setImmediate(r));
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  });
});
server.keepAliveTimeout = 75_000;
server.listen(Number(process.argv[2]), '127.0.0.1');
