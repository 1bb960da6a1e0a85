import { createServer } from 'node:http';

/** A webhook sink in the bench process: counts deliveries and records when each uuid arrived. */
export function startSink(): Promise<{
  url: string;
  count: () => number;
  arrivals: Map<string, number>;
  close: () => Promise<void>;
}> {
  let count = 0;
  const arrivals = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      count++;
      const body = Buffer.concat(chunks).toString();
      const m = /"uuid":"([0-9a-f-]{36})"/.exec(body);
      if (m) arrivals.set(m[1]!, performance.now());
      res.writeHead(200);
      res.end();
    });
  });
  server.keepAliveTimeout = 75_000;
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        url: `http://127.0.0.1:${port}/`,
        count: () => count,
        arrivals,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
