// `npx tsx bench/profile-exits.ts [exits] [rows]` — where one VM exit round trip spends its time: the cpuid-exits case
// of bench/run.ts (a guest looping on CPUID under the chapter 5 reference hypervisor), profiled with V8's sampling
// profiler, printed as the functions with the most self time during the run (setup and module loading left out).
// Run it before and after a change to the exit path; the figures are shares of the run, so a noisy box matters less.
import { Session } from 'node:inspector';
import { benchParts, cpuidLoopProgram, hypervisorWorkload } from './guest-workloads.ts';

const exits = Number(process.argv[2] ?? 100_000);
const rows = Number(process.argv[3] ?? 25);

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const workload = hypervisorWorkload('profile-exits', cpuidLoopProgram(exits), benchParts({ cpuid: true, ept: false }));

const session = new Session();
session.connect();
const post = (method: string, params?: object): Promise<unknown> =>
  new Promise((resolve, reject) => session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));

await post('Profiler.enable');
await post('Profiler.setSamplingInterval', { interval: 100 });
await post('Profiler.start');
const c0 = process.cpuUsage();
workload.start(exits * 5 + 1000);
const c = process.cpuUsage(c0);
const { profile } = (await post('Profiler.stop')) as { profile: Profile };
session.disconnect();
if (workload.log.exits.length !== exits + 1) throw new Error(`the guest did not finish: ${workload.log.exits.length} exits`);

// Self time per function (name and file), over the samples taken while the run was under way.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const n = byId.get(id)!;
  const dt = profile.timeDeltas[i] ?? 0;
  const where = n.callFrame.url.replace(/^.*?\/(src|solutions|bench)\//, '$1/');
  const key = `${n.callFrame.functionName || '(anonymous)'} ${where}`;
  self.set(key, (self.get(key) ?? 0) + dt);
  total += dt;
});
const seconds = (c.user + c.system) / 1e6;
console.log(`${exits + 1} VM exits, ${Math.round((exits + 1) / seconds).toLocaleString('en')} exits/s while profiled`);
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
  console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${key}`);
}
