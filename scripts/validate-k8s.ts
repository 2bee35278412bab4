/**
 * Offline validation of the Kubernetes manifests in deploy/k8s/ (no cluster, no kubeconform here):
 *
 * 1. every document against the Kubernetes OpenAPI schema of its apiVersion/kind (kubernetes-models);
 * 2. unknown fields, which the schemas allow but the API server rejects or silently drops
 *    (`livenesProbe:` would leave a pod without its probe): found by watching which fields the schema
 *    validator reads — a field it never looks at is not in the schema;
 * 3. references between documents that only break once applied: selectors and labels, the StatefulSet's
 *    service, ConfigMap/Secret names and keys, probe ports, the Ingress backend, the HPA target and the
 *    resource requests its metrics need, pre-created claim names;
 * 4. the config.ini inside the ConfigMap, loaded by the server's own config loader.
 *
 * Run: node --import tsx scripts/validate-k8s.ts [dir]   (default deploy/k8s; exit 1 on any problem)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/index.ts';

type Obj = Record<string, unknown>;

export interface Manifest {
  readonly file: string;
  readonly index: number;
  readonly doc: Obj;
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function describe(m: Manifest): string {
  return `${m.file}#${m.index + 1} ${String(m.doc['kind'])}/${String(obj(m.doc['metadata'])['name'])}`;
}

/**
 * Wraps `root` so that every property read is recorded; `unread()` then lists fields nothing looked at.
 * Enumerating an object's keys (what a validator does for maps such as labels or ConfigMap data) counts
 * as reading all of them.
 */
function readTracker(root: object): { proxy: object; unread(): string[] } {
  const pending = new Map<object, { path: string; keys: Set<string> }>();
  const proxies = new WeakMap<object, object>();
  const wrap = (value: unknown, path: string): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    const known = proxies.get(value);
    if (known) return known;
    const entry = { path, keys: new Set(Array.isArray(value) ? [] : Object.keys(value)) };
    pending.set(value, entry);
    const proxy = new Proxy(value, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof prop !== 'string') return v;
        entry.keys.delete(prop);
        return wrap(v, `${path}/${prop}`);
      },
      ownKeys(target) {
        entry.keys.clear();
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  const proxy = wrap(root, '') as object;
  return {
    proxy,
    unread: () => [...pending.values()].flatMap((e) => [...e.keys].map((k) => `${e.path}/${k}`)),
  };
}

interface Validatable {
  validate(): void;
}

/** Schema and unknown-field problems of one document. */
async function schemaProblems(m: Manifest): Promise<string[]> {
  const apiVersion = str(m.doc['apiVersion']);
  const kind = str(m.doc['kind']);
  if (!apiVersion || !kind) return [`${describe(m)}: apiVersion and kind are required`];
  let Model: (new (data: Obj) => Validatable) | undefined;
  try {
    const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, unknown>;
    Model = mod[kind] as typeof Model;
  } catch {
    return [`${describe(m)}: unknown apiVersion/kind ${apiVersion}/${kind}`];
  }
  if (!Model) return [`${describe(m)}: unknown kind ${kind}`];
  const model = new Model(m.doc);
  const tracker = readTracker(model);
  try {
    // The schema check reads the model through the tracker, so what it never reads is unknown.
    (Object.getPrototypeOf(model) as Validatable).validate.call(tracker.proxy);
  } catch (err) {
    return [`${describe(m)}: ${err instanceof Error ? err.message : String(err)}`];
  }
  return tracker.unread().map((path) => `${describe(m)}: unknown field ${path}`);
}

function labelsMatch(selector: Obj, labels: Obj): boolean {
  const want = obj(selector['matchLabels']);
  return Object.keys(want).length > 0 && Object.entries(want).every(([k, v]) => labels[k] === v);
}

/** Cross-document checks. */
export function referenceProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const find = (kind: string, name: string | undefined) =>
    manifests.find((m) => m.doc['kind'] === kind && obj(m.doc['metadata'])['name'] === name);
  const namespaces = manifests
    .filter((m) => m.doc['kind'] === 'Namespace')
    .map((m) => obj(m.doc['metadata'])['name']);
  const workloads = manifests.filter((m) => ['Deployment', 'StatefulSet'].includes(String(m.doc['kind'])));

  for (const m of manifests) {
    const ns = obj(m.doc['metadata'])['namespace'];
    if (m.doc['kind'] !== 'Namespace' && !namespaces.includes(ns)) {
      problems.push(`${describe(m)}: namespace ${String(ns)} is not defined by a Namespace document`);
    }
  }

  for (const w of workloads) {
    const spec = obj(w.doc['spec']);
    const template = obj(spec['template']);
    const labels = obj(obj(template['metadata'])['labels']);
    if (!labelsMatch(obj(spec['selector']), labels)) {
      problems.push(`${describe(w)}: spec.selector does not match the pod template's labels`);
    }
    const podSpec = obj(template['spec']);
    const volumes = arr(podSpec['volumes']).map(obj);
    for (const v of volumes) {
      const cm = str(obj(v['configMap'])['name']);
      if (cm !== undefined && !find('ConfigMap', cm)) problems.push(`${describe(w)}: no ConfigMap ${cm}`);
    }
    const claimNames = arr(spec['volumeClaimTemplates']).map((t) => str(obj(obj(t)['metadata'])['name']));
    for (const c of arr(podSpec['containers']).map(obj)) {
      const ports = arr(c['ports']).map(obj);
      for (const env of arr(c['env']).map(obj)) {
        const ref = obj(obj(env['valueFrom'])['secretKeyRef']);
        const name = str(ref['name']);
        if (name === undefined) continue;
        const secret = find('Secret', name);
        const keys = { ...obj(secret?.doc['data']), ...obj(secret?.doc['stringData']) };
        if (!secret) problems.push(`${describe(w)}: env ${String(env['name'])} needs Secret ${name}`);
        else if (!(String(ref['key']) in keys)) {
          problems.push(`${describe(w)}: Secret ${name} has no key ${String(ref['key'])}`);
        }
      }
      for (const mount of arr(c['volumeMounts']).map(obj)) {
        const name = mount['name'];
        if (!volumes.some((v) => v['name'] === name) && !claimNames.includes(str(name))) {
          problems.push(`${describe(w)}: volumeMount ${String(name)} has no volume`);
        }
      }
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const port = obj(obj(c[probe])['httpGet'])['port'];
        if (port === undefined) continue;
        if (!ports.some((p) => p['containerPort'] === port || p['name'] === port)) {
          problems.push(`${describe(w)}: ${probe} port ${String(port)} is not a containerPort`);
        }
      }
    }
    if (w.doc['kind'] === 'StatefulSet') {
      const service = find('Service', str(spec['serviceName']));
      if (!service || obj(service.doc['spec'])['clusterIP'] !== 'None') {
        problems.push(`${describe(w)}: serviceName ${String(spec['serviceName'])} is not a headless Service`);
      }
    }
  }

  for (const s of manifests.filter((m) => m.doc['kind'] === 'Service')) {
    const selector = obj(obj(s.doc['spec'])['selector']);
    const matches = workloads.some((w) => {
      const labels = obj(obj(obj(obj(w.doc['spec'])['template'])['metadata'])['labels']);
      return Object.entries(selector).every(([k, v]) => labels[k] === v);
    });
    if (!matches) problems.push(`${describe(s)}: selector matches no pod template`);
  }

  for (const ing of manifests.filter((m) => m.doc['kind'] === 'Ingress')) {
    for (const rule of arr(obj(ing.doc['spec'])['rules']).map(obj)) {
      for (const path of arr(obj(rule['http'])['paths']).map(obj)) {
        const backend = obj(obj(path['backend'])['service']);
        const service = find('Service', str(backend['name']));
        const port = obj(backend['port'])['number'] ?? obj(backend['port'])['name'];
        const ports = arr(obj(service?.doc['spec'])['ports']).map(obj);
        if (!service) problems.push(`${describe(ing)}: no Service ${String(backend['name'])}`);
        else if (!ports.some((p) => p['port'] === port || p['name'] === port)) {
          problems.push(`${describe(ing)}: Service ${String(backend['name'])} has no port ${String(port)}`);
        }
      }
    }
  }

  for (const hpa of manifests.filter((m) => m.doc['kind'] === 'HorizontalPodAutoscaler')) {
    const spec = obj(hpa.doc['spec']);
    const ref = obj(spec['scaleTargetRef']);
    const target = find(String(ref['kind']), str(ref['name']));
    if (!target) {
      problems.push(`${describe(hpa)}: scale target ${String(ref['kind'])}/${String(ref['name'])} not found`);
      continue;
    }
    const containers = arr(obj(obj(obj(target.doc['spec'])['template'])['spec'])['containers']).map(obj);
    for (const metric of arr(spec['metrics']).map(obj)) {
      const resource = str(obj(metric['resource'])['name']);
      if (resource === undefined) continue;
      // Utilization is a percentage of the request: without one the HPA cannot compute it.
      if (!containers.every((c) => obj(obj(c['resources'])['requests'])[resource] !== undefined)) {
        problems.push(
          `${describe(hpa)}: ${resource} utilization needs a ${resource} request on every container`,
        );
      }
    }
  }

  for (const pvc of manifests.filter((m) => m.doc['kind'] === 'PersistentVolumeClaim')) {
    const name = String(obj(pvc.doc['metadata'])['name']);
    const owner = workloads.some((w) => {
      const spec = obj(w.doc['spec']);
      const sts = String(obj(w.doc['metadata'])['name']);
      const templates = arr(spec['volumeClaimTemplates']).map((t) => String(obj(obj(t)['metadata'])['name']));
      const replicas = typeof spec['replicas'] === 'number' ? spec['replicas'] : 1;
      return templates.some((t) =>
        Array.from({ length: replicas }, (_, i) => `${t}-${sts}-${i}`).includes(name),
      );
    });
    const mounted = workloads.some((w) =>
      arr(obj(obj(obj(w.doc['spec'])['template'])['spec'])['volumes']).some(
        (v) => obj(obj(v)['persistentVolumeClaim'])['claimName'] === name,
      ),
    );
    if (!owner && !mounted) problems.push(`${describe(pvc)}: no workload uses this claim`);
  }
  return problems;
}

/** The server's own loader on each ConfigMap's config.ini; secrets referenced from Secrets get dummies. */
export function configMapProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const env: Record<string, string> = {};
  for (const m of manifests) {
    for (const c of arr(obj(obj(obj(m.doc['spec'])['template'])['spec'])['containers']).map(obj)) {
      for (const e of arr(c['env']).map(obj)) {
        if (typeof e['name'] === 'string') env[e['name']] = str(e['value']) ?? 'x'.repeat(48);
      }
    }
  }
  for (const m of manifests.filter((d) => d.doc['kind'] === 'ConfigMap')) {
    for (const [key, text] of Object.entries(obj(m.doc['data']))) {
      if (!key.endsWith('.ini') || typeof text !== 'string') continue;
      const tmp = mkdtempSync(join(tmpdir(), 'validate-k8s-'));
      try {
        writeFileSync(join(tmp, key), text);
        const { problems: found } = loadConfig({ path: join(tmp, key), env });
        for (const p of found.filter((x) => x.severity === 'error')) {
          problems.push(`${describe(m)}: ${key}: ${p.message}`);
        }
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
  }
  return problems;
}

export function readManifests(dir: string): { manifests: Manifest[]; problems: string[] } {
  const manifests: Manifest[] = [];
  const problems: string[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
    docs.forEach((d, index) => {
      for (const e of d.errors) problems.push(`${file}#${index + 1}: YAML: ${e.message}`);
      const value: unknown = d.toJS();
      if (value === null || value === undefined) return;
      if (!isObj(value)) problems.push(`${file}#${index + 1}: not a mapping`);
      else manifests.push({ file, index, doc: value });
    });
  }
  return { manifests, problems };
}

export async function validateK8s(dir: string): Promise<{ documents: number; problems: string[] }> {
  const { manifests, problems } = readManifests(dir);
  for (const m of manifests) problems.push(...(await schemaProblems(m)));
  problems.push(...referenceProblems(manifests), ...configMapProblems(manifests));
  return { documents: manifests.length, problems };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? new URL('../deploy/k8s', import.meta.url).pathname;
  const { documents, problems } = await validateK8s(dir);
  for (const p of problems) console.error(`k8s: ${p}`);
  if (problems.length > 0) process.exit(1);
  console.log(`k8s: ${documents} documents in ${dir} valid (schema, unknown fields, references, config.ini)`);
}
