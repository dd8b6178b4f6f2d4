/**
 * The registry one service serves at /metrics: the standard process and Node.js metrics
 * (process_cpu_seconds_total, nodejs_heap_size_used_bytes, …, unprefixed so the usual
 * dashboards and rules find them), virtsync_build_info, and that service's own metrics. A
 * service may add more (gauges read from its database or broker at scrape time).
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { SERVICE_METRICS } from './metrics.ts';

type MetricsService = keyof typeof SERVICE_METRICS;

function isMetricsService(name: string): name is MetricsService {
  return Object.hasOwn(SERVICE_METRICS, name);
}

/** `service` is the service definition's name; a name with no metrics of its own gets the common ones only. */
export function createServiceRegistry(service: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'virtsync_build_info',
    help: 'Always 1; the labels say which virtsync build and Node.js runs this service',
    labelNames: ['version', 'service', 'nodejs_version'] as const,
    registers: [registry],
  }).set({ version: packageJson.version, service, nodejs_version: process.version }, 1);
  for (const metric of isMetricsService(service) ? SERVICE_METRICS[service] : []) registry.registerMetric(metric);
  return registry;
}
