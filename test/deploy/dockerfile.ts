/**
 * Reads deploy/Dockerfile into stages and instructions, and replays a target's build steps on the host:
 * no Docker engine runs here, so the Dockerfile is checked by doing what it does (STACK.md).
 *
 * The replay gives each stage a directory standing in for its root filesystem; absolute image paths in
 * COPY, WORKDIR, RUN and the image's own config file are mapped into it. The base image's content is
 * the host's Node.js (the same major version). What cannot happen outside an image is stubbed and
 * reported: creating system users and changing owners (the host's users stay untouched) and
 * `npm cache clean` (it only trims the image layer, and would wipe the host's cache).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

export interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly name: string;
  /** A stage name or an external image. */
  readonly from: string;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  readonly args: Readonly<Record<string, string>>;
  readonly stages: Stage[];
}

/** Splits the file into instructions (continuations joined, comments dropped). */
export function parseDockerfile(text: string): Dockerfile {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      const next = lines[++i]!.trim();
      line = `${line.slice(0, -1).trimEnd()} ${next.startsWith('#') ? '' : next}`.trimEnd();
    }
    const m = /^(\w+)\s+([\s\S]*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile:${start}: cannot parse: ${line}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!;
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!from) throw new Error(`Dockerfile:${start}: bad FROM`);
      const image = from[1]!.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? '');
      stages.push({ name: from[2] ?? `stage-${stages.length}`, from: image, instructions: [] });
    } else if (op === 'ARG' && stages.length === 0) {
      const [name, value = ''] = rest.split('=');
      args[name!.trim()] = value.trim();
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile:${start}: ${op} before FROM`);
      stage.instructions.push({ op, args: rest, line: start });
    }
  }
  return { args, stages };
}

/** The stages a target is built from, base first. */
export function stageChain(file: Dockerfile, target: string): Stage[] {
  const chain: Stage[] = [];
  let stage = file.stages.find((s) => s.name === target);
  while (stage) {
    chain.unshift(stage);
    const parent = stage.from;
    stage = file.stages.find((s) => s.name === parent);
  }
  if (chain.length === 0) throw new Error(`no stage ${target}`);
  return chain;
}

/** JSON exec form `["a", "b"]` or shell form. */
export function commandOf(args: string): string[] {
  const text = args.trim();
  if (text.startsWith('[')) return JSON.parse(text) as string[];
  return ['/bin/sh', '-c', text];
}

export interface BuildResult {
  /** The target's root filesystem on the host. */
  readonly root: string;
  readonly workdir: string;
  readonly env: Record<string, string>;
  readonly cmd: string[];
  readonly healthcheck: string[] | undefined;
  readonly user: string | undefined;
  readonly exposed: string[];
  /** What the replay did not do, and why. */
  readonly notes: string[];
}

/** Image paths are rewritten into the stage root: anything under these top-level directories. */
const IMAGE_PATH_RE = /(^|[\s="'])(\/(?:etc|var|opt|build|app|usr\/local)(?:\/[^\s"';&|]*)?)/g;

export function mapImagePaths(text: string, root: string): string {
  return text.replace(IMAGE_PATH_RE, (_, lead: string, path: string) => `${lead}${root}${path}`);
}

const STUBS = [
  // Host users stay untouched; the image's user is reported instead.
  'groupadd() { echo "[replay] skipped: groupadd $*"; }',
  'useradd() { echo "[replay] skipped: useradd $*"; }',
  'chown() { echo "[replay] skipped: chown $*"; }',
  'npm() { if [ "$1" = cache ]; then echo "[replay] skipped: npm $*"; else command npm "$@"; fi; }',
].join('\n');

/**
 * Replays the build of `target` with `context` as the build context, stage roots under `work`.
 * Throws with the step and its output when a step fails.
 */
export function replayBuild(file: Dockerfile, target: string, context: string, work: string): BuildResult {
  const roots = new Map<string, string>();
  const notes: string[] = [];
  const build = (stageName: string): BuildResult => {
    const chain = stageChain(file, stageName);
    // The chain shares one root: a stage only ever adds to its parent's filesystem.
    const root = join(work, chain[0]!.name);
    // What every base image has and RUN steps may rely on.
    for (const dir of ['usr/local/bin', 'etc', 'tmp', 'var/lib', 'var/log']) {
      mkdirSync(join(root, dir), { recursive: true });
    }
    let workdir = '/';
    const env: Record<string, string> = {};
    let cmd: string[] = [];
    let healthcheck: string[] | undefined;
    let user: string | undefined;
    const exposed: string[] = [];
    for (const stage of chain) {
      roots.set(stage.name, root);
      for (const ins of stage.instructions) {
        const where = `Dockerfile:${ins.line} ${ins.op} ${ins.args}`;
        switch (ins.op) {
          case 'WORKDIR':
            workdir = isAbsolute(ins.args) ? ins.args : join(workdir, ins.args);
            mkdirSync(join(root, workdir), { recursive: true });
            break;
          case 'ENV': {
            for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
              env[m[1]!] = m[2]!.replace(/^"|"$/g, '').replace(/\$(\w+)/g, (_, n: string) => env[n] ?? process.env[n] ?? '');
            }
            break;
          }
          case 'COPY': {
            const words = ins.args.split(/\s+/);
            const flags = words.filter((w) => w.startsWith('--'));
            const paths = words.filter((w) => !w.startsWith('--'));
            const fromStage = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
            const sourceRoot = fromStage ? (roots.get(fromStage) ?? build(fromStage).root) : context;
            const dest = paths.pop()!;
            const destAbs = join(root, isAbsolute(dest) ? dest : join(workdir, dest));
            for (const src of paths) {
              const from = join(sourceRoot, src);
              if (!existsSync(from)) throw new Error(`${where}: ${src} is not in the ${fromStage ?? 'build context'}`);
              // Docker: a directory's contents go into dest; a file goes into dest/ when dest ends in /.
              const target = dest.endsWith('/') && !from.endsWith('/') ? join(destAbs, src.split('/').pop()!) : destAbs;
              mkdirSync(dirname(target), { recursive: true });
              cpSync(from, target, { recursive: true, verbatimSymlinks: true });
            }
            if (flags.some((f) => f.startsWith('--chown'))) notes.push(`${where}: ownership not applied`);
            break;
          }
          case 'RUN': {
            const script = `${STUBS}\n${mapImagePaths(ins.args, root)}`;
            const r = spawnSync('/bin/sh', ['-c', script], {
              cwd: join(root, workdir),
              env: { ...process.env, ...env },
              encoding: 'utf8',
              timeout: 300_000,
            });
            if (r.status !== 0) throw new Error(`${where}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
            for (const l of r.stdout.split('\n')) if (l.startsWith('[replay]')) notes.push(`Dockerfile:${ins.line}: ${l}`);
            break;
          }
          case 'CMD':
            cmd = commandOf(ins.args);
            break;
          case 'HEALTHCHECK': {
            const m = /CMD\s+([\s\S]*)$/.exec(ins.args);
            healthcheck = ins.args.trim() === 'NONE' || !m ? undefined : commandOf(m[1]!);
            break;
          }
          case 'USER':
            user = ins.args.trim();
            break;
          case 'EXPOSE':
            exposed.push(...ins.args.split(/\s+/));
            break;
          case 'ARG':
          case 'VOLUME':
          case 'STOPSIGNAL':
          case 'LABEL':
            break;
          default:
            throw new Error(`${where}: the replay does not know ${ins.op}`);
        }
      }
    }
    return { root, workdir, env, cmd, healthcheck, user, exposed, notes };
  };
  return build(target);
}

/** The build context as `deploy/Dockerfile.dockerignore` admits it: `**` then `!path` exceptions. */
export function buildContext(repo: string, dockerignore: string, into: string): string[] {
  const lines = readFileSync(dockerignore, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines[0] !== '**') throw new Error('the replay understands a dockerignore of "**" plus !exceptions only');
  const admitted = lines.slice(1).map((l) => {
    if (!l.startsWith('!')) throw new Error(`unsupported dockerignore line: ${l}`);
    return l.slice(1).replace(/\/$/, '');
  });
  for (const path of admitted) {
    const from = join(repo, path);
    if (!existsSync(from)) throw new Error(`dockerignore admits ${path}, which does not exist`);
    mkdirSync(dirname(join(into, path)), { recursive: true });
    cpSync(from, join(into, path), { recursive: true });
  }
  return admitted;
}
