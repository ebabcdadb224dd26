/**
 * docker-compose.yml, the Dockerfile and the deployment scripts, read against the code they
 * deploy: what could drift apart without anything failing until a deployment misbehaves (a
 * variable no code reads, a search attribute not registered, two workers on one GPU, a path or
 * build stage that is gone). Needs no Docker engine.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';

import { ENVIRONMENT } from '../config/environment.js';
import { SEARCH_ATTRIBUTE_FLAGS, SEARCH_ATTRIBUTES } from '../config/searchAttributes.js';
import { dependenciesFromEnvironment } from '../workers/dependencies.js';
import { selfRewardPlugin } from '../workers/plugin.js';
import { REPO_ROOT } from './servers.js';
import { TASK_QUEUES, type WorkerRole } from '../contract/workers.js';

type Fields = Readonly<Record<string, unknown>>;

function fields(value: unknown, where: string): Fields {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Fields;
  throw new Error(`${where}: expected a mapping, got ${JSON.stringify(value)}`);
}

function strings(value: unknown, where: string): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  throw new Error(`${where}: expected a list of strings, got ${JSON.stringify(value)}`);
}

interface Service {
  readonly name: string;
  readonly spec: Fields;
  /** `environment` as a mapping, every value as text. */
  readonly environment: Readonly<Record<string, string>>;
  /** Bind mounts: host path (as written, with `${VAR:-default}` resolved to its default) -> container path. */
  readonly binds: ReadonlyMap<string, string>;
}

/** `${NAME:-default}` as compose resolves it when NAME is unset. */
const withDefaults = (text: string) => text.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

function service(name: string, value: unknown): Service {
  const spec = fields(value, name);
  const environment = Object.fromEntries(Object.entries(fields(spec['environment'] ?? {}, `${name}.environment`)).map(([k, v]) => [k, String(v)]));
  const binds = new Map<string, string>();
  for (const volume of strings(spec['volumes'] ?? [], `${name}.volumes`)) {
    const [source = '', target = ''] = withDefaults(volume).split(':');
    if (source.startsWith('.') || source.startsWith('/')) binds.set(source, target);
  }
  return { name, spec, environment, binds };
}

const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');
let services: Map<string, Service>;
let workers: { readonly service: Service; readonly role: WorkerRole }[];

/** The role an entry point runs, from its `workerMain(...)` call; the images run the build (`dist/workers/x.js` of `workers/x.ts`). */
function entryRole(entry: string): WorkerRole | 'all' {
  const source = entry.replace(/^dist\//, '').replace(/\.js$/, '.ts');
  const call = /workerMain\('(cpu|gpu|all)'\)/.exec(readFileSync(join(REPO_ROOT, source), 'utf8'));
  if (!call) throw new Error(`${source}: no workerMain('cpu' | 'gpu' | 'all') call`);
  return call[1] as WorkerRole | 'all';
}

beforeAll(() => {
  // Compose files use YAML merge keys (`<<: *anchor`) for what the workers share.
  const compose = fields(parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }), 'docker-compose.yml');
  services = new Map(Object.entries(fields(compose['services'], 'services')).map(([name, spec]) => [name, service(name, spec)]));
  workers = [...services.values()].flatMap((s) => {
    const command = s.spec['command'] === undefined ? [] : strings(s.spec['command'], `${s.name}.command`);
    const entry = command.find((part) => /^(dist\/)?workers\//.test(part));
    if (entry === undefined) return [];
    const role = entryRole(entry);
    if (role === 'all') throw new Error(`${s.name} runs ${entry}, which runs both roles; a deployment runs one role per worker`);
    return [{ service: s, role }];
  });
});

function only(name: string): Service {
  const found = services.get(name);
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

const gpuWorkers = () => workers.filter((w) => w.role === 'gpu').map((w) => w.service);

describe('docker-compose.yml workers', () => {
  it('has one CPU worker and GPU workers, whose queues together are every task queue', async () => {
    expect(workers.filter((w) => w.role === 'cpu')).toHaveLength(1);
    expect(gpuWorkers().length).toBeGreaterThanOrEqual(1);
    // The queue each role polls, as the plugin sets the workers up.
    const dependencies = dependenciesFromEnvironment({ SELF_REWARD_STORE: await mkdtemp(join(tmpdir(), 'deploy-store-')) });
    const polled = new Set(workers.map((w) => selfRewardPlugin({ role: w.role, dependencies }).configureWorker({ taskQueue: 'unset' }).taskQueue));
    expect([...polled].sort()).toEqual(Object.values(TASK_QUEUES).sort());
  });

  it('sets only environment variables the code reads, and the ones a deployment needs', () => {
    const known = Object.keys(ENVIRONMENT);
    for (const { service: s } of workers) {
      for (const name of Object.keys(s.environment)) expect(known, `${s.name} sets ${name}`).toContain(name);
      expect(s.environment['SELF_REWARD_STORE'], s.name).toMatch(/^s3:\/\/[a-z0-9.-]+/);
      for (const name of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'S3_ENDPOINT', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'SELF_REWARD_WORK_DIR']) {
        expect(s.environment[name], `${s.name} ${name}`).toBeTruthy();
      }
    }
    expect(workers.find((w) => w.role === 'cpu')?.service.environment['SELF_REWARD_DEVICE'] ?? 'cpu').toBe('cpu');
  });

  it('pins each GPU worker to one device of its own, seen inside the container as cuda:0', () => {
    const ids = gpuWorkers().map((s) => {
      const deploy = fields(s.spec['deploy'], `${s.name}.deploy`);
      const devices = fields(fields(deploy['resources'], `${s.name}.deploy.resources`)['reservations'], `${s.name} reservations`)['devices'];
      expect(Array.isArray(devices) ? devices : [], `${s.name} reserves one device entry`).toHaveLength(1);
      const device = fields((devices as unknown[])[0], `${s.name} device`);
      expect(device['driver']).toBe('nvidia');
      expect(strings(device['capabilities'], `${s.name} capabilities`)).toContain('gpu');
      const deviceIds = strings(device['device_ids'], `${s.name} device_ids`);
      expect(deviceIds, `${s.name} reserves exactly one GPU`).toHaveLength(1);
      // The reservation makes that GPU the container's only one, so CUDA numbers it 0.
      expect(s.environment['SELF_REWARD_DEVICE'], s.name).toBe('cuda:0');
      expect(s.name, 'a GPU worker is named after its device').toBe(`worker-gpu-${deviceIds[0]}`);
      return deviceIds[0];
    });
    expect(new Set(ids).size, 'no two GPU workers share a device').toBe(ids.length);
    for (const w of workers.filter((w) => w.role === 'cpu')) expect(w.service.spec['deploy']).toBeUndefined();
  });

  it('gives each worker the models read-only and a work volume of its own', () => {
    // The CPU worker too: its check before sampling reads a round's model folders and prompt files.
    const volumes = workers.map(({ service: s }) => {
      expect([...s.binds.values()], s.name).toContain('/models');
      expect(strings(s.spec['volumes'], s.name).find((v) => v.includes(':/models'))).toMatch(/:ro$/);
      const work = strings(s.spec['volumes'], s.name).find((v) => v.endsWith(`:${s.environment['SELF_REWARD_WORK_DIR']}`));
      expect(work, `${s.name} mounts a volume at its work dir`).toBeDefined();
      return work;
    });
    expect(new Set(volumes).size).toBe(volumes.length);
  });

  it('reaches the Temporal and MinIO services of the same file', () => {
    const init = only('temporal-init');
    const minioInit = only('minio-init');
    for (const { service: s } of workers) {
      expect(s.environment['TEMPORAL_ADDRESS']).toBe(init.environment['TEMPORAL_ADDRESS']);
      expect(s.environment['TEMPORAL_NAMESPACE']).toBe(init.environment['TEMPORAL_NAMESPACE']);
      expect(new URL(s.environment['S3_ENDPOINT'] ?? '').hostname).toBe('minio');
      // The bucket the init step creates is the one the workers write to.
      expect(s.environment['SELF_REWARD_STORE']).toBe(`s3://${minioInit.environment['BUCKET']}`);
      expect(s.environment['S3_ACCESS_KEY']).toBe(minioInit.environment['MINIO_ROOT_USER']);
      expect(s.environment['S3_SECRET_KEY']).toBe(minioInit.environment['MINIO_ROOT_PASSWORD']);
      const after = fields(s.spec['depends_on'], `${s.name}.depends_on`);
      expect(fields(after['temporal-init'], s.name)['condition']).toBe('service_completed_successfully');
      expect(fields(after['minio-init'], s.name)['condition']).toBe('service_completed_successfully');
    }
    const published = (name: string): string[] =>
      strings(only(name).spec['ports'], `${name}.ports`).map((port) => port.replace(/^\$\{BIND_ADDRESS:-[^}]*\}:/, ''));
    expect(published('temporal')).toContain('7233:7233');
    expect(published('temporal-ui')).toContain('8233:8080');
  });
});

describe('Temporal set-up in docker-compose.yml', () => {
  it('registers every search attribute of config/searchAttributes.ts, with its type', () => {
    const names = Object.values(SEARCH_ATTRIBUTES).map((key) => key.name);
    expect(SEARCH_ATTRIBUTE_FLAGS.map((flag) => flag.split('=')[0]).sort()).toEqual([...names].sort());
    const registered = (only('temporal-init').environment['SEARCH_ATTRIBUTES'] ?? '').split(/\s+/).filter((p) => p !== '');
    expect([...registered].sort()).toEqual([...SEARCH_ATTRIBUTE_FLAGS].sort());
    const script = readFileSync(join(REPO_ROOT, 'deploy', 'temporal', 'setup-namespace.sh'), 'utf8');
    expect(script).toMatch(/for pair in \$SEARCH_ATTRIBUTES/);
    expect(script).toContain('temporal operator search-attribute create --name "$name" --type "$type"');
  });
});

describe('paths and images named by docker-compose.yml', () => {
  it('mounts files and folders that exist, and runs scripts from them', () => {
    for (const s of services.values()) {
      for (const [source, target] of s.binds) {
        expect(existsSync(join(REPO_ROOT, source)), `${s.name} mounts ${source}`).toBe(true);
        const entrypoint = s.spec['entrypoint'] === undefined ? [] : strings(s.spec['entrypoint'], `${s.name}.entrypoint`);
        for (const part of entrypoint.filter((p) => p.startsWith(`${target}/`))) {
          expect(existsSync(join(REPO_ROOT, source, part.slice(target.length))), `${s.name} runs ${part}`).toBe(true);
        }
      }
    }
    expect(only('temporal-schema').binds.get('./deploy/temporal')).toBe('/deploy');
  });

  it('builds stages the Dockerfile has, from files that exist, running the same entry points', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const stages = new Map<string, string>();
    for (const block of dockerfile.split(/^(?=FROM )/m).slice(1)) {
      const name = /^FROM \S+ AS (\S+)/.exec(block)?.[1];
      if (name !== undefined) stages.set(name, block);
    }
    for (const { service: s } of workers) {
      const build = fields(s.spec['build'], `${s.name}.build`);
      expect(build['context']).toBe('.');
      expect(build['dockerfile'] ?? 'Dockerfile').toBe('Dockerfile');
      const stage = stages.get(String(build['target']));
      expect(stage, `${s.name} builds target ${String(build['target'])}`).toBeDefined();
      const cmd = /^CMD (.*)$/m.exec(stage ?? '')?.[1];
      expect(JSON.parse(cmd ?? 'null'), `${s.name}: the image's own command is the one compose runs`).toEqual(s.spec['command']);
    }
    // GPU images carry onnxruntime-node's CUDA provider and the trainer's venv (the workers'
    // default trainer command); CPU images neither.
    expect(stages.get('gpu')).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci');
    expect(stages.get('gpu')).toContain('scripts/setup-python.sh');
    expect(stages.get('cpu')).toContain('ONNXRUNTIME_NODE_INSTALL=skip npm ci');
    expect(stages.get('cpu')).not.toContain('python');
    for (const line of dockerfile.split('\n').filter((l) => /^COPY (?!--from)/.test(l))) {
      const sources = line.split(/\s+/).slice(1, -1);
      for (const source of sources) expect(existsSync(join(REPO_ROOT, source)), line).toBe(true);
    }
  });

  it('holds no default credential and publishes its ports on this machine only, unless told otherwise', () => {
    const text = readFileSync(COMPOSE_FILE, 'utf8');
    for (const name of ['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD', 'POSTGRES_PASSWORD', 'GRAFANA_ADMIN_PASSWORD']) {
      expect(text, name).not.toMatch(new RegExp(`\\$\\{${name}:-`));
      expect(text, name).toMatch(new RegExp(`\\$\\{${name}:\\?`));
    }
    for (const s of services.values()) {
      for (const port of s.spec['ports'] === undefined ? [] : strings(s.spec['ports'], `${s.name}.ports`)) {
        expect(port, s.name).toMatch(/^\$\{BIND_ADDRESS:-127\.0\.0\.1\}:\d+:\d+$/);
      }
    }
    for (const { service: s } of workers) expect(s.environment['SELF_REWARD_ALLOWED_PATHS'], s.name).toBe('/models:/app/packs');
  });

  it('pins every image it pulls', () => {
    for (const s of services.values()) {
      if (s.spec['build'] !== undefined) continue;
      expect(String(s.spec['image']), s.name).toMatch(/^[\w./-]+:(?!latest$)[\w.-]+$/);
    }
  });
});

describe('config/environment.ts', () => {
  const SOURCES = ['workers', 'store', 'cli', 'client', 'config'];
  const sourceFiles = () =>
    SOURCES.flatMap((folder) =>
      readdirSync(join(REPO_ROOT, folder))
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
        .map((f) => join(folder, f)),
    );

  it('lists only variables some code reads through fromEnvironment', () => {
    const text = sourceFiles()
      .filter((f) => f !== join('config', 'environment.ts'))
      .map((f) => readFileSync(join(REPO_ROOT, f), 'utf8'))
      .join('\n');
    for (const name of Object.keys(ENVIRONMENT)) expect(text, name).toMatch(new RegExp(`fromEnvironment\\((?:process\\.)?env, '${name}'\\)`));
  });

  it('is the only way the workers and the command line read a variable', () => {
    for (const file of sourceFiles()) {
      expect(readFileSync(join(REPO_ROOT, file), 'utf8'), file).not.toMatch(/env\[['"][A-Z0-9_]+['"]\]/);
    }
  });
});
