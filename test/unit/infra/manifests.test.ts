/**
 * What can be checked of the deployment files without a cluster or a Docker daemon: every
 * YAML file parses; the Kubernetes manifests have the expected kinds, wiring and probes and
 * set every variable the services read; docker-compose.yml runs the services and the
 * simulated fleet; the image's entrypoint and the systemd units start real entry points.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { SERVICE_ENVIRONMENTS, variablesOf } from '../../../shared/config.ts';
import { DEFAULT_FLEET, planFleet } from '../../../tools/fleet/fleet-plan.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const INFRA = path.join(ROOT, 'infra');
const SERVICES = Object.keys(SERVICE_ENVIRONMENTS);
const HTTP_PORT = 9464;

function filesUnder(dir: string, suffixes: readonly string[]): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && suffixes.some((suffix) => entry.name.endsWith(suffix)))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
}

/** Every document of a YAML file as plain data; compose's `<<:` merge keys are resolved. */
function loadYaml(file: string): unknown[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  return documents.map((document) => {
    assert.deepEqual(document.errors.map(String), [], `${path.relative(ROOT, file)} does not parse`);
    return document.toJS();
  });
}

// Manifests are untyped data: the tests walk them with `any` and let the assertions say what is missing.
type Manifest = any;

const yamlFiles = filesUnder(INFRA, ['.yaml', '.yml']);
const k8sDocuments: Manifest[] = filesUnder(path.join(INFRA, 'k8s'), ['.yaml', '.yml']).flatMap(loadYaml);
const byKind = (kind: string): Manifest[] => k8sDocuments.filter((doc) => doc?.kind === kind);
const kustomization: Manifest = loadYaml(path.join(INFRA, 'k8s/kustomization.yaml'))[0];
/** The generated ConfigMap's data: config.env's KEY=value lines (comments skipped). */
const configData: Record<string, string> = Object.fromEntries(
  readFileSync(path.join(INFRA, 'k8s', kustomization.configMapGenerator[0].envs[0]), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
);
const podSpecs = (): Manifest[] => [...byKind('Deployment'), ...byKind('DaemonSet'), ...byKind('Job')].map((w) => w.spec.template.spec);
const workloads = (): Manifest[] => [...byKind('Deployment'), ...byKind('DaemonSet')];
const containerOf = (workload: Manifest): Manifest => workload.spec.template.spec.containers[0];
const envNamed = (container: Manifest, name: string): Manifest => (container.env ?? []).find((entry: Manifest) => entry.name === name);

describe('every YAML file under infra/ parses', () => {
  test('there are YAML files to check', () => assert.ok(yamlFiles.length >= 8, yamlFiles.join(', ')));
  for (const file of yamlFiles) {
    test(path.relative(ROOT, file), () => {
      const documents = loadYaml(file);
      assert.ok(documents.length > 0 && documents.every((doc) => typeof doc === 'object' && doc !== null));
    });
  }
});

describe('Kubernetes manifests', () => {
  test('the expected kinds: Namespace, a generated ConfigMap, an example Secret, a migrate Job, three Deployments, the agent DaemonSet', () => {
    assert.equal(byKind('Namespace').length, 1);
    assert.deepEqual(kustomization.configMapGenerator.map((g: Manifest) => g.name), ['virtsync-config']);
    assert.equal(byKind('Secret').length, 1);
    assert.deepEqual(byKind('Job').map((job) => containerOf(job).args), [['migrate']]);
    assert.deepEqual(byKind('Deployment').map((d) => containerOf(d).args[0]).sort(), ['audit-subscriber', 'state-writer', 'tick-producer']);
    assert.deepEqual(byKind('DaemonSet').map((d) => containerOf(d).args[0]), ['sync-agent']);
  });

  test('everything namespaced is in the virtsync namespace', () => {
    const namespace = byKind('Namespace')[0].metadata.name;
    for (const doc of k8sDocuments.filter((d) => d.kind !== 'Namespace' && d.kind !== 'Kustomization')) {
      assert.equal(doc.metadata.namespace, namespace, `${doc.kind} ${doc.metadata.name}`);
    }
  });

  test('the agent DaemonSet runs on compute nodes with the libvirt socket directory mounted from the host', () => {
    const agent = byKind('DaemonSet')[0];
    const pod = agent.spec.template.spec;
    assert.ok(Object.keys(pod.nodeSelector ?? {}).length > 0, 'a nodeSelector for compute nodes');
    const volume = pod.volumes.find((v: Manifest) => v.hostPath?.path === '/var/run/libvirt');
    assert.ok(volume, 'a hostPath volume for /var/run/libvirt');
    const mount = containerOf(agent).volumeMounts.find((m: Manifest) => m.name === volume.name);
    assert.equal(mount?.mountPath, '/var/run/libvirt');
    assert.deepEqual(envNamed(containerOf(agent), 'AGENT_HOSTS')?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  });

  test('every service has liveness on /healthz and readiness on /readyz at the HTTP port', () => {
    for (const workload of workloads()) {
      const container = containerOf(workload);
      const name = `${workload.kind} ${workload.metadata.name}`;
      assert.deepEqual(container.livenessProbe?.httpGet, { path: '/healthz', port: HTTP_PORT }, name);
      assert.deepEqual(container.readinessProbe?.httpGet, { path: '/readyz', port: HTTP_PORT }, name);
      assert.ok(container.ports.some((port: Manifest) => port.containerPort === HTTP_PORT), `${name} exposes ${HTTP_PORT}`);
    }
  });

  test('every variable every service reads is set: ConfigMap, Secret, or the downward API', () => {
    const config = configData;
    const secretKeys = Object.keys(byKind('Secret')[0].stringData);
    assert.equal(config.HTTP_PORT, String(HTTP_PORT), 'HTTP_PORT matches the probes');
    for (const workload of workloads()) {
      const container = containerOf(workload);
      const service = container.args[0] as keyof typeof SERVICE_ENVIRONMENTS;
      assert.ok(container.envFrom.some((source: Manifest) => source.configMapRef?.name === kustomization.configMapGenerator[0].name), service);
      for (const variable of variablesOf(SERVICE_ENVIRONMENTS[service])) {
        const own = envNamed(container, variable);
        if (own?.valueFrom?.secretKeyRef !== undefined) {
          assert.ok(secretKeys.includes(own.valueFrom.secretKeyRef.key), `${service}: ${variable} from a Secret key that exists`);
        } else {
          assert.ok(own !== undefined || variable in config, `${service}: ${variable} is set`);
        }
      }
      for (const url of ['DATABASE_URL', 'AMQP_URL']) assert.ok(envNamed(container, url)?.valueFrom?.secretKeyRef, `${service}: ${url} comes from the Secret`);
    }
  });

  test('the kustomization lists every manifest but the example Secret (apply -k must not overwrite the real one)', () => {
    const manifests = readdirSync(path.join(INFRA, 'k8s')).filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml' && !name.endsWith('.example.yaml'));
    assert.deepEqual([...kustomization.resources].sort(), manifests.sort());
    assert.ok(!kustomization.resources.some((name: string) => name.startsWith('secret')));
  });

  test('every pod: no service account token, the runtime default seccomp profile', () => {
    for (const pod of podSpecs()) {
      assert.equal(pod.automountServiceAccountToken, false);
      assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    }
  });

  test('every Deployment has a PodDisruptionBudget selecting its pods', () => {
    for (const deployment of byKind('Deployment')) {
      const labels = deployment.spec.template.metadata.labels;
      const budget = byKind('PodDisruptionBudget').find((pdb) => Object.entries(pdb.spec.selector.matchLabels).every(([k, v]) => labels[k] === v));
      assert.ok(budget, deployment.metadata.name);
    }
  });

  test('the migrate Job is named for the image tag it runs, so a new release applies as a new Job', () => {
    const tag: string = kustomization.images[0].newTag;
    assert.deepEqual(byKind('Job').map((job) => job.metadata.name), [`virtsync-migrate-${tag.replaceAll('.', '-')}`]);
    assert.equal(containerOf(byKind('Job')[0]).envFrom, undefined, 'no reference to the hashed ConfigMap');
  });
});

describe('docker-compose.yml', () => {
  const compose: Manifest = loadYaml(path.join(INFRA, 'docker/docker-compose.yml'))[0];
  const services: Record<string, Manifest> = compose.services;

  test('runs RabbitMQ with the management plugin, PostgreSQL, the migrations, the fleet and the four services', () => {
    for (const name of ['rabbitmq', 'postgres', 'migrate', 'fleet', ...SERVICES]) assert.ok(services[name], `service ${name}`);
    assert.match(services.rabbitmq.image, /^rabbitmq:3-management/);
    assert.match(services.postgres.image, /^postgres:/);
    for (const name of SERVICES) assert.equal(services[name].command[0], name, `${name} runs its own entry point`);
    assert.equal(services.migrate.command[0], 'migrate');
  });

  test('every depends_on names a service', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const dependency of Object.keys(service.depends_on ?? {})) assert.ok(services[dependency], `${name} depends on ${dependency}`);
    }
  });

  test('the agent serves exactly the hosts the fleet job generates, from the shared volume', () => {
    const args: string[] = services.fleet.command;
    const option = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
    const plan = planFleet({ ...DEFAULT_FLEET, hosts: Number(option('--hosts')), minVmsPerHost: 1, maxVmsPerHost: 1 });
    const agent = services['sync-agent'];
    assert.equal(agent.environment.AGENT_HOSTS, plan.hosts.join(','));
    assert.equal(agent.environment.LIBVIRT_URI, `test://${option('--dir')}/{host}.xml`);
    const volume = (mounts: string[]): string | undefined => mounts.find((m) => m.split(':')[1] === option('--dir'))?.split(':')[0];
    assert.ok(volume(services.fleet.volumes) !== undefined && volume(services.fleet.volumes) === volume(agent.volumes));
    assert.ok(Object.keys(compose.volumes).includes(volume(agent.volumes) ?? ''));
  });
});

describe('image and systemd units start real entry points', () => {
  const entrypoint = readFileSync(path.join(INFRA, 'docker/entrypoint.sh'), 'utf8');

  test('the Dockerfile builds one image on node:20-bookworm-slim with the native build tools and npm ci', () => {
    const dockerfile = readFileSync(path.join(INFRA, 'docker/Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20-bookworm-slim/m);
    assert.match(dockerfile, /libvirt-dev/);
    assert.match(dockerfile, /pkg-config/);
    assert.match(dockerfile, /npm ci/);
    assert.match(dockerfile, /npm run build/);
    assert.match(dockerfile, /ENTRYPOINT .*entrypoint\.sh/);
  });

  test('the entrypoint accepts every process compose and Kubernetes ask for', () => {
    const labels = new Set([...entrypoint.matchAll(/^\s*([a-z| -]+)\)\s*$/gm)].flatMap((match) => (match[1] ?? '').split('|').map((s) => s.trim())));
    for (const process of [...SERVICES, 'migrate', 'fleet', 'demo', 'cli']) assert.ok(labels.has(process), `entrypoint handles ${process}`);
    // Compiled JavaScript: `npm run build` writes dist/services/<name>/main.js from each main.ts.
    assert.match(entrypoint, /exec node "dist\/services\/\$command\/main\.js"/);
    assert.doesNotMatch(entrypoint, /tsx/);
    for (const service of SERVICES) assert.ok(existsSync(path.join(ROOT, 'services', service, 'main.ts')));
  });

  for (const service of SERVICES) {
    test(`virtsync-${service}.service`, () => {
      const unit = readFileSync(path.join(INFRA, 'systemd', `virtsync-${service}.service`), 'utf8');
      const directives = new Map<string, string[]>();
      for (const line of unit.split('\n')) {
        const match = /^([A-Za-z]+)=(.*)$/.exec(line);
        if (match?.[1] !== undefined) directives.set(match[1], [...(directives.get(match[1]) ?? []), match[2] ?? '']);
      }
      const one = (key: string): string | undefined => directives.get(key)?.[0];
      assert.equal(one('ExecStart'), `/usr/bin/node dist/services/${service}/main.js`);
      assert.equal(one('Restart'), 'on-failure');
      assert.equal(one('KillSignal'), 'SIGTERM');
      assert.ok(Number(one('TimeoutStopSec')) * 1000 > 10_000, 'TimeoutStopSec longer than the default SHUTDOWN_TIMEOUT_MS');
      assert.ok((directives.get('EnvironmentFile') ?? []).length > 0);
    });
  }
});
