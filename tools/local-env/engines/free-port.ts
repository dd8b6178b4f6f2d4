/** Free TCP ports on 127.0.0.1 below the kernel's ephemeral range (a port in it may be taken by any outgoing connection at any time). */
import net from 'node:net';

const LOW = 20_000;
const HIGH = 32_000;

const isFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });

/** `count` consecutive free ports (a RabbitMQ node takes its AMQP port and the distribution port after it). */
export async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = LOW + Math.floor(Math.random() * (HIGH - LOW - count));
    const ports = Array.from({ length: count }, (_, i) => first + i);
    let free = true;
    for (const port of ports) free &&= await isFree(port);
    if (free) return ports;
  }
  throw new Error(`no ${count} consecutive free ports between ${LOW} and ${HIGH}`);
}
