import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 8,
  slug: '08-smp',
  title: 'SMP',
  summary: 'Run the hypervisor on every CPU of an SMP host: per-CPU VMXON regions and VMCSs set up from on_each_cpu, teardown on every CPU even after a partial failure, the migration bug that splits a VMX sequence across two CPUs, and a guest that starts its own application processors with INIT-SIPI-SIPI.',
  objectives: [
    'Say which VMX state belongs to one logical processor (VMX operation, the VMXON region, the current VMCS and its launch state, IA32_FEATURE_CONTROL) and why a hypervisor keeps it in per-CPU data.',
    'Tell process context (may sleep, may migrate) from atomic context (preemption or interrupts off, must not sleep), and put every allocation in the first and every VMX sequence in the second.',
    'Run code on every CPU with on_each_cpu and on one with smp_call_function_single, and know how an IPI reaches a CPU that is running a guest.',
    'Leave VMX operation on every CPU, VMCLEAR before VMXOFF, free only when all CPUs are out, and undo a start that failed on one CPU.',
    'Read the kernel\'s migration report, find the sleep point that moved a task between two VMX instructions, and fix it with get_cpu/put_cpu.',
    'Start a guest\'s application processors: forward its INIT and start-up IPIs, turn the INIT exit into wait-for-SIPI, and load the real-mode state a SIPI gives.',
  ],
  exercises: [
    {
      id: 'per-cpu',
      title: 'VMX on every CPU',
      file: 'per-cpu.ts',
      test: 'per-cpu.test.ts',
      points: 25,
      hints: [
        'Two halves. vmxOnEachCpu first calls allocPerCpuRegions (given; process context, GFP_KERNEL is fine there), then k.on_each_cpu((cpu) => vmxOnThisCpu(k, cpus.get(cpu))). Never call chapter 1\'s vmxOn inside on_each_cpu: it allocates the region with GFP_KERNEL, which sleeps with preemption disabled.',
        'vmxOnThisCpu is chapter 1\'s vmxOn without the allocation: cpuHasVmx, enableFeatureControl, c.setVmxe = CR4.VMXE was 0, enterVmxCrState, cpu.vmxon(c.vmxon.pa), vmxStatusOf(cpu); then loadVmcs(cpu, c.vmcs) from chapter 2. Each failure goes into c.error and returns.',
        'The result: collect every CPU\'s error after on_each_cpu returns as `cpu ${c}: ${error}`, joined by "; ". ok is true only when there is none; keep cpus in the failure result so exercise 8.2 can undo the CPUs that got in.',
      ],
    },
    {
      id: 'teardown',
      title: 'Teardown on every CPU, after a partial failure too',
      file: 'teardown.ts',
      test: 'teardown.test.ts',
      points: 25,
      hints: [
        'vmxOffThisCpu undoes in reverse: if c.loaded → cpu.vmclear(c.vmcs.pa); if c.on → cpu.vmxoff(); if c.setVmxe → clear CR4.VMXE. Clear each flag as you go so a second call does nothing, and return at once when k.cpu().id is not c.cpu.',
        'vmxOffEachCpu: k.on_each_cpu((cpu) => vmxOffThisCpu(k, cpus.get(cpu))) first; only after it returns (every CPU is out) free both regions of every CPU with freeVmxRegion.',
        'vmxStartAll: const r = vmxOnEachCpu(k); ok → return it. r.cpus === null → { ok: false, errno: -ENOMEM, error: r.error }. Otherwise vmxOffEachCpu(k, r.cpus) — it undoes exactly what each CPU did — and { ok: false, errno: -EIO, error: r.error }.',
      ],
    },
    {
      id: 'migration',
      title: 'Find the migration bug',
      file: 'migration.ts',
      test: 'migration.test.ts',
      points: 25,
      hints: [
        'Run the tests and read dmesg: "BUG: VMCLEAR on CPU 1, but this task\'s previous VMX instruction ran on CPU 0: the scheduler moved it (CPU 0 → CPU 1 at get_zeroed_page(GFP_KERNEL))". vmxOn, allocVmcs and buildGuest all allocate; each is a sleep point between VMX instructions.',
        'Move every allocation to the top of init, before any VMX instruction: allocVmxonRegion and allocVmcs (chapter 1/2) instead of vmxOn, buildGuest, and k.hostEntry. Free what you got if any of them fails and return -ENOMEM.',
        'Then const cpuId = k.get_cpu(); try { VMX on with 8.1\'s vmxOnThisCpu(k, { cpu: cpuId, vmxon, vmcs, on: false, setVmxe: false, loaded: false, error: null }), set `launch`, controls, host state, guest state, VMLAUNCH } finally { k.put_cpu(); }. Nothing between get_cpu and put_cpu may allocate with GFP_KERNEL.',
      ],
    },
    {
      id: 'guest-aps',
      title: 'Start the guest\'s APs: INIT-SIPI-SIPI',
      file: 'guest-aps.ts',
      test: 'guest-aps.test.ts',
      points: 25,
      hints: [
        'decodeX2apicIcr: vector = bits 7:0, deliveryMode = 10:8, assert = bit 14, shorthand = 19:18, destination = 63:32 — Number((v >> BigInt(shift)) & mask) for each. sipiState(v): { csSelector: (v & 0xff) << 8, csBase: (v & 0xff) << 12, rip: 0 }.',
        'onWrmsr: msr = ECX (rcx & 0xffffffffn); value = (EDX << 32) | EAX, each the low 32 bits of its register. Refuse (stop, naming it) another MSR, a delivery mode other than INIT (5) and start-up (6), a shorthand, a destination ≥ k.num_online_cpus(). Else k.apic_icr_write(Number(value & 0xffffffffn), destination) and SKIP.',
        'onInit: vmwrite(cpu, \'GUEST_ACTIVITY_STATE\', ACTIVITY_WAIT_FOR_SIPI) and RESUME — never SKIP: an INIT exit is not caused by an instruction. onSipi: the vector is qualification & 0xff; VMWRITE GUEST_CS_SELECTOR, GUEST_CS_BASE, GUEST_RIP from sipiState and GUEST_ACTIVITY_STATE = ACTIVITY_ACTIVE, then RESUME.',
      ],
    },
  ],
};

export default chapter;
