// The host kernel a hypervisor module runs on: Linux-like services with Linux-like guarantees.
//   memory   kmalloc/kzalloc/kfree (physically contiguous, not zeroed), vmalloc/vfree (virtually
//            contiguous only), alloc_pages/__get_free_pages/get_zeroed_page/free_pages,
//            virt_to_phys/phys_to_virt, and kernel-virtual memory access (read32, write64, …)
//   CPUs     cpu() — the current CPU's privileged instructions (HostCpu), smp_processor_id,
//            preempt_disable/enable, get_cpu/put_cpu, local_bh_disable/enable, local_irq_disable/enable/save/restore,
//            on_each_cpu,
//            smp_call_function_single (IPIs: a CPU running a guest takes them as a VM exit), per-CPU data
//   sleeping might_sleep, schedule, msleep, cond_resched, mutex_lock: where the seeded scheduler may migrate a
//            preemptible task (see smp.ts for what the kernel reports about VMX code that migrates)
//   log      printk / dmesg
//   modules  insmod/rmmod with oops reports for host faults
//   entries  hostEntry(): a kernel-text address for a TypeScript function (for HOST_RIP)
import { APIC_REG, SVR, x2apicMsr } from '../machine/apic.ts';
import { CpuFault } from '../machine/fault.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import type { RunResult } from '../machine/machine.ts';
import type { PhysicalMemory } from '../machine/memory.ts';
import { IMAGE, MAX_CPUS, bootCpu, buildIdt, buildPageTables, imagePa, imageVa, perCpuOffset } from './boot.ts';
import { EINVAL, errnoName } from './errno.ts';
import { HostCpu } from './host-cpu.ts';
import {
  KERNEL_IMAGE_BYTES, PAGE_OFFSET, PAGE_SIZE, PHYS_KERNEL_START, START_KERNEL_MAP, VMALLOC_START,
  classifyAddress, linuxPhysAddr,
} from './layout.ts';
import { PageAllocator } from './page-alloc.ts';
import { KERN_ERR, KERN_WARNING, KernelLog } from './printk.ts';
import { oopsFromError, type OopsReport } from './oops.ts';
import { Slab } from './slab.ts';
import {
  CALL_FUNCTION_VECTOR, foreignHostState, hasOwnHostBases, ownHostBases, vmxAfterMigration, vmxThroughStaleHandle, type Migration,
} from './smp.ts';
import { hexLower } from '../util/hex.ts';

/** What the kernel needs of the machine it boots on (a Machine, or memory and CPUs alone in unit tests). */
export interface KernelMachine {
  readonly memory: PhysicalMemory;
  readonly cpus: readonly LogicalProcessor[];
  run?(opts: { maxInstructions: number }): RunResult;
  addBreakpoint?(rip: bigint | number, lp?: number): void;
  addHostEntry?(rip: bigint | number): void;
}

/** How `Kernel.run` ended: the machine's stop reason, plus the host entries it called on the way. */
export interface KernelRunResult extends RunResult {
  /** Host entry points called (VM exits handled), in order. */
  readonly hostCalls: number;
}

export interface KernelOptions {
  /** Bytes of RAM the kernel manages (default: what the machine's memory says). */
  ramBytes?: number;
  /** Seed for uninitialised memory contents and scheduling decisions (default 1). */
  seed?: number;
  /**
   * What the "BIOS" left in IA32_FEATURE_CONTROL on every CPU (default 'unlocked': the module must
   * enable and lock it). See SDM Vol. 3C, "Enabling and Entering VMX Operation".
   */
  featureControl?: 'unlocked' | 'locked-enabled' | 'locked-disabled';
  /**
   * CONFIG_DEBUG_ATOMIC_SLEEP: report a sleep point reached with preemption disabled ("BUG: sleeping function
   * called from invalid context"). Default false, as in a production kernel, where the same code only fails when
   * the allocation really sleeps.
   */
  debugAtomicSleep?: boolean;
}

/** A hypervisor is a kernel module: init returns 0 or a negative errno, like module_init. */
export interface KernelModule {
  readonly name: string;
  init(kernel: Kernel): number | void;
  exit?(kernel: Kernel): void;
}

export type LoadResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly errno: number; readonly message: string; readonly oops?: OopsReport };

export interface Page {
  readonly pfn: number;
}

export type HostEntry = (kernel: Kernel, cpu: HostCpu) => void;

/** gfp flags that matter here: GFP_ATOMIC never sleeps (so never migrates the caller). */
export type GfpFlags = 'GFP_KERNEL' | 'GFP_ATOMIC';

/** Offset in kernel text of the idle loop's HLT. */
const IDLE_HLT = 1;
/** The idle loop's HLT as the LP's RIP holds it (a signed number). */
const IDLE_RIP = Number(BigInt.asIntN(64, imageVa(IMAGE.TEXT + IDLE_HLT)));
/** The spurious-interrupt vector the kernel programs into the SVR (Linux's SPURIOUS_APIC_VECTOR). */
const SPURIOUS_VECTOR = 0xff;
/** Instructions on_each_cpu runs the machine for, waiting for a CPU that runs a guest to take its IPI. */
const IPI_WAIT_INSTRUCTIONS = 100_000;
/** Consecutive host-entry calls without a guest instruction that Kernel.run takes for a loop that never ends. */
const MAX_HOST_CALLS_WITHOUT_GUEST = 1000;

export class Kernel {
  readonly memory: PhysicalMemory;
  readonly log: KernelLog;
  readonly pages: PageAllocator;
  private readonly slab: Slab;
  private readonly hostCpus: HostCpu[];
  private readonly vmallocMap = new Map<bigint, number>(); // virtual page → pfn
  private readonly vmallocAreas = new Map<bigint, number[]>(); // start → pfns
  private vmallocNext = VMALLOC_START;
  private vmallocTableNext = IMAGE.VMALLOC_TABLES;
  private readonly entries = new Map<bigint, { name: string; fn: HostEntry }>();
  /** The same entries keyed by RIP as the LP holds it (a signed number): the run loop looks one up per VM exit. */
  private readonly entriesByLpRip = new Map<number, { name: string; fn: HostEntry }>();
  private textNext = IMAGE.TEXT + 0x1000;
  private readonly modules = new Map<string, KernelModule>();
  private oopsCount = 0;
  /** The CPU the current task runs on (shared with the HostCpus, which run VMX instructions there). */
  private readonly cursor = { current: 0 };
  private get current(): number { return this.cursor.current; }
  private set current(cpu: number) { this.cursor.current = cpu; }
  private preemptCount = 0;
  private readonly debugAtomicSleep: boolean;
  /** The CPU of the task's last VMX instruction (-1: none yet), and the migrations since (see smp.ts). */
  private lastVmxCpu = -1;
  private movesSinceVmx: Migration[] = [];
  /** A VMX instruction through a HostCpu of another CPU was reported since the last migration. */
  private staleHandleReported = false;
  /** Functions sent to each CPU by IPI (on_each_cpu, smp_call_function_single), run when it takes the IPI. */
  private readonly callQueue: (() => void)[][];
  /** Each CPU's own GDTR, TR and GS bases, and the CPUs whose foreign host state was reported (once each). */
  private readonly ownBases: ReturnType<typeof ownHostBases>[];
  private readonly foreignHostReported = new Set<number>();
  /** Host entries running now (exit handlers): on_each_cpu cannot wait for other CPUs in one. */
  private hostEntryDepth = 0;
  /** The scheduler's own generator (xorshift32), seeded from a hash of the seed: small seeds differ at once. */
  private schedRng: number;
  readonly cr3: number;
  readonly ramBytes: number;

  constructor(
    readonly machine: KernelMachine,
    opts: KernelOptions = {},
  ) {
    this.memory = machine.memory;
    this.ramBytes = opts.ramBytes ?? machine.memory.ramBytes;
    if (machine.cpus.length > MAX_CPUS) throw new Error(`at most ${MAX_CPUS} CPUs`);
    const seed = (opts.seed ?? 1) >>> 0 || 1;
    this.schedRng = mixSeed(opts.seed ?? 1);
    this.debugAtomicSleep = opts.debugAtomicSleep ?? false;
    this.callQueue = machine.cpus.map(() => []);
    this.ownBases = machine.cpus.map((_, c) => ownHostBases(c));
    this.log = new KernelLog(() => Number(machine.cpus[0]?.instructions ?? 0) / 1e9);
    const imageEnd = PHYS_KERNEL_START + KERNEL_IMAGE_BYTES;
    if (this.ramBytes < imageEnd + 4 * 1024 * 1024) throw new Error(`the kernel needs more than ${imageEnd} bytes of RAM`);
    this.pages = new PageAllocator(this.memory, imageEnd / PAGE_SIZE, Math.floor(this.ramBytes / PAGE_SIZE), seed);
    this.slab = new Slab(this.memory, this.pages);

    this.cr3 = buildPageTables(this.memory, this.ramBytes);
    const oopsEntry = this.hostEntry('asm_exc_host_fault', () => undefined);
    buildIdt(this.memory, oopsEntry);
    const fc = { unlocked: 0, 'locked-enabled': 0x5, 'locked-disabled': 0x1 }[opts.featureControl ?? 'unlocked'];
    // The idle loop every CPU sits in when no host or guest code runs: cli; hlt; jmp back to hlt.
    this.memory.writeBytes(imagePa(IMAGE.TEXT), [0xfa, 0xf4, 0xeb, 0xfd]);
    for (const lp of machine.cpus) {
      bootCpu(lp, this.memory, this.cr3);
      lp.featureControl = fc;
      // setup_local_APIC(): software-enable the local APIC (SVR bit 8; spurious vector FFH), so the CPU accepts
      // fixed interrupts such as IPIs. The LVT entries stay masked. See SDM Vol. 3A, "Spurious-Interrupt Vector
      // Register (SVR)".
      if (lp.apic?.mode === 'xapic') lp.apic.writeXapic?.(APIC_REG.APIC_SPIV, SVR.APIC_ENABLED | SPURIOUS_VECTOR);
      this.idle(lp);
    }
    const moduleText = imageVa(IMAGE.TEXT + 0x800);
    this.hostCpus = machine.cpus.map((lp) => new HostCpu(lp, this.memory, moduleText));
    for (const c of this.hostCpus) {
      c.vmxCpu = (mnemonic, handle) => this.vmxCpu(mnemonic, handle);
      c.taskCpu = () => this.machine.cpus[this.current]!;
    }
    this.printk(`Linux version 6.1.0-vmxlab (VMX Lab emulated host), ${machine.cpus.length} CPU(s), ${this.ramBytes >> 20} MiB RAM`);
  }

  // ===================================================================================== printk
  printk(message: string): void {
    this.log.printk(this.current, message);
  }
  dmesg(): string {
    return this.log.dmesg();
  }

  // ===================================================================================== CPUs
  /** The CPU the calling code runs on (this_cpu). */
  cpu(): HostCpu {
    return this.hostCpus[this.current]!;
  }
  /** Every online CPU, by id (for inspection; run code on one with on_each_cpu). */
  allCpus(): readonly HostCpu[] {
    return this.hostCpus;
  }
  num_online_cpus(): number {
    return this.hostCpus.length;
  }
  /**
   * smp_processor_id(): only meaningful while the task cannot migrate. In preemptible code Linux
   * (CONFIG_DEBUG_PREEMPT) warns; so do we.
   */
  smp_processor_id(): number {
    if (this.preemptCount === 0 && this.hostCpus.length > 1) {
      this.log.printk(this.current, `${KERN_ERR}BUG: using smp_processor_id() in preemptible [00000000] code: insmod/1000`);
    }
    return this.current;
  }
  preempt_disable(): void {
    this.preemptCount++;
  }
  preempt_enable(): void {
    if (this.preemptCount === 0) {
      this.log.printk(this.current, `${KERN_WARNING}WARNING: preempt_enable() without preempt_disable()`);
      return;
    }
    this.preemptCount--;
  }
  /** get_cpu(): disable preemption and return the current CPU id. */
  get_cpu(): number {
    this.preempt_disable();
    return this.current;
  }
  put_cpu(): void {
    this.preempt_enable();
  }
  local_irq_disable(): void {
    const lp = this.cpu().lp;
    lp.setReg('rflags', lp.getReg('rflags') & ~0x200n);
    this.preemptCount++; // no interrupts → no preemption
  }
  local_irq_enable(): void {
    const lp = this.cpu().lp;
    lp.setReg('rflags', lp.getReg('rflags') | 0x200n);
    if (this.preemptCount > 0) this.preemptCount--;
  }
  /**
   * local_bh_disable(): no softirqs (bottom halves) on this CPU until local_bh_enable. Linux counts it in the same
   * preempt_count, so it also keeps the task on this CPU. (This kernel has no softirqs; the preemption effect is
   * what a hypervisor sees.)
   */
  local_bh_disable(): void {
    this.preemptCount++;
  }
  local_bh_enable(): void {
    if (this.preemptCount === 0) {
      this.log.printk(this.current, `${KERN_WARNING}WARNING: local_bh_enable() without local_bh_disable()`);
      return;
    }
    this.preemptCount--;
  }
  /** local_irq_save(): disable interrupts and return the flags to give local_irq_restore. */
  local_irq_save(): bigint {
    const flags = this.cpu().lp.getReg('rflags');
    this.local_irq_disable();
    return flags;
  }
  /** local_irq_restore(flags): interrupts on again only if they were on at the matching local_irq_save. */
  local_irq_restore(flags: bigint): void {
    if ((flags & 0x200n) !== 0n) this.local_irq_enable();
    else if (this.preemptCount > 0) this.preemptCount--;
  }

  /**
   * on_each_cpu(): run fn on every online CPU with preemption disabled, as Linux does from an IPI handler. A CPU
   * in VMX root operation (idle, or the caller's) runs it at once. A CPU that runs a guest gets the IPI like any
   * interrupt: with "external-interrupt exiting" it VM-exits (reason 1), fn runs there in VMX root operation right
   * after the exit — before the exit handler at HOST_RIP, as KVM handles the interrupt before the exit — and the
   * handler then sees the exit. Without that control the interrupt goes to the guest and fn never runs: the kernel
   * says so instead of waiting forever. See SDM Vol. 3C, "Pin-Based VM-Execution Controls".
   */
  on_each_cpu(fn: (cpu: number) => void): void {
    for (let c = 0; c < this.hostCpus.length; c++) this.callOn(c, () => fn(c));
  }
  /** smp_call_function_single(): run fn on one CPU (as on_each_cpu does on each); 0, or -EINVAL for no such CPU. */
  smp_call_function_single(cpu: number, fn: () => void): number {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.hostCpus.length) return -EINVAL;
    this.callOn(cpu, fn);
    return 0;
  }

  private callOn(cpu: number, fn: () => void): void {
    const lp = this.machine.cpus[cpu]!;
    if (lp.vmx?.nonRoot !== true) {
      this.runAsInterrupt(cpu, fn);
      return;
    }
    this.callQueue[cpu]!.push(fn);
    this.sendCallFunctionIpi(cpu);
    if (this.hostEntryDepth > 0 || this.machine.run === undefined) {
      this.log.printk(this.current, `${KERN_WARNING}WARNING: IPI to CPU ${cpu} from an exit handler: it runs a guest, and the function runs only when that CPU takes the interrupt`);
      return;
    }
    this.run({ maxInstructions: IPI_WAIT_INSTRUCTIONS, until: () => this.callQueue[cpu]!.length === 0 });
    if (this.callQueue[cpu]!.length > 0) {
      this.callQueue[cpu]!.length = 0;
      this.log.printk(this.current, `${KERN_ERR}BUG: CPU ${cpu} did not take the function-call IPI within ${IPI_WAIT_INSTRUCTIONS} instructions: it stays in VMX non-root operation. Without "external-interrupt exiting" the guest receives the interrupt itself, and the host never sees it.`);
    }
  }

  /** Run fn as an IPI handler runs: on that CPU, preemption off; the caller's VMX bookkeeping untouched. */
  private runAsInterrupt(cpu: number, fn: () => void): void {
    const saved = { current: this.current, lastVmxCpu: this.lastVmxCpu, moves: this.movesSinceVmx };
    this.current = cpu;
    this.lastVmxCpu = -1;
    this.movesSinceVmx = NO_MOVES;
    this.preemptCount++;
    try {
      fn();
    } finally {
      this.preemptCount--;
      this.current = saved.current;
      this.lastVmxCpu = saved.lastVmxCpu;
      this.movesSinceVmx = saved.moves;
    }
  }

  /** A fixed interrupt, CALL_FUNCTION_VECTOR, from this CPU's local APIC to `cpu`'s (APIC ID = CPU number). */
  private sendCallFunctionIpi(cpu: number): void {
    // ICR: vector, delivery mode 000 (fixed), physical destination; shorthand 01 (self) for the sender itself.
    // See SDM Vol. 3A, "Interrupt Command Register (ICR)".
    this.apic_icr_write(CALL_FUNCTION_VECTOR | (cpu === this.current ? 1 << 18 : 0), cpu);
  }

  /**
   * apic_icr_write(): send an IPI from this CPU's local APIC — `low` is ICR bits 31:0 (vector, delivery mode,
   * level, shorthand), `apicId` the physical destination. xAPIC: ICR high (ID in bits 31:24) first, since writing
   * ICR low sends; x2APIC: one WRMSR to 830H with the ID in bits 63:32. See SDM Vol. 3A, "Interrupt Command Register
   * (ICR)" and "Interrupt Command Register (ICR) in x2APIC Mode".
   */
  apic_icr_write(low: number, apicId: number): void {
    const apic = this.machine.cpus[this.current]?.apic;
    if (apic === undefined || apic === null) return;
    if (apic.mode === 'x2apic') apic.writeMsr(x2apicMsr(APIC_REG.APIC_ICR), (BigInt(apicId >>> 0) << 32n) | BigInt(low >>> 0));
    else if (apic.mode === 'xapic') {
      apic.writeXapic?.(APIC_REG.APIC_ICR2, (apicId & 0xff) << 24);
      apic.writeXapic?.(APIC_REG.APIC_ICR, low >>> 0);
    }
  }

  /** After a VM exit on `lp`: take the function-call IPI (acknowledge, EOI) and run what was sent to it. */
  private takeCallFunctionIpi(lp: LogicalProcessor): void {
    const queue = this.callQueue[lp.id]!;
    const apic = lp.apic;
    if (apic !== null) {
      // "Acknowledge interrupt on exit" already moved it to the ISR; otherwise the host's handler acknowledges it.
      if (apic.pendingVector() === CALL_FUNCTION_VECTOR) apic.acknowledge(CALL_FUNCTION_VECTOR);
      if (apic.mode === 'x2apic') apic.writeMsr(x2apicMsr(APIC_REG.APIC_EOI), 0n);
      else apic.writeXapic?.(APIC_REG.APIC_EOI, 0);
    }
    for (const fn of queue.splice(0)) this.runAsInterrupt(lp.id, fn);
  }

  /** alloc_percpu(): one value per CPU. */
  alloc_percpu<T>(init: (cpu: number) => T): PerCpu<T> {
    return new PerCpu(this, this.hostCpus.map((_, c) => init(c)));
  }

  /**
   * A sleep point: the scheduler may move a preemptible task to another CPU (seeded: about one sleep point in four
   * with two or more CPUs). With preemption disabled the task stays; CONFIG_DEBUG_ATOMIC_SLEEP reports the call.
   */
  might_sleep(where = 'might_sleep()'): void {
    if (this.preemptCount > 0) {
      if (this.debugAtomicSleep) {
        this.log.printk(this.current, `${KERN_ERR}BUG: sleeping function called from invalid context at ${where}\nin_atomic(): 1, irqs_disabled(): ${(this.cpu().lp.getRflags() & 0x200) === 0 ? 1 : 0}, pid: 1000, name: insmod`);
      }
      return;
    }
    if (this.hostCpus.length < 2) return;
    let r = this.schedRng;
    r ^= r << 13;
    r ^= r >>> 17;
    r ^= r << 5;
    this.schedRng = r >>> 0;
    if ((this.schedRng & 3) !== 0) return;
    const from = this.current;
    this.current = (this.current + 1 + (this.schedRng >>> 2) % (this.hostCpus.length - 1)) % this.hostCpus.length;
    if (this.movesSinceVmx === NO_MOVES) this.movesSinceVmx = [];
    this.movesSinceVmx.push({ from, to: this.current, at: where });
    this.staleHandleReported = false;
  }
  /** schedule(): always a sleep point. */
  schedule(where = 'schedule()'): void {
    if (this.preemptCount > 0) this.log.printk(this.current, `${KERN_ERR}BUG: scheduling while atomic: insmod/1000/${hexLower(this.preemptCount, 8)}`);
    this.might_sleep(where);
  }
  /** msleep(): sleeps, so the task may wake on another CPU. */
  msleep(ms: number): void {
    this.schedule(`msleep(${ms})`);
  }
  /** cond_resched(): give the scheduler a chance (a sleep point; nothing happens in atomic context). */
  cond_resched(): void {
    if (this.preemptCount === 0) this.might_sleep('cond_resched()');
  }
  /** mutex_lock(): may sleep waiting for the lock, so may migrate; a mutex held twice is a deadlock. */
  mutex_lock(m: Mutex): void {
    this.might_sleep('mutex_lock()');
    if (m.locked) this.log.printk(this.current, `${KERN_ERR}BUG: mutex_lock of a mutex this task already holds: a deadlock`);
    m.locked = true;
  }
  mutex_unlock(m: Mutex): void {
    if (!m.locked) this.log.printk(this.current, `${KERN_WARNING}WARNING: mutex_unlock of a mutex that is not locked`);
    m.locked = false;
  }

  /**
   * The LP a VMX instruction issued through `handle` runs on: the CPU this task is on now. Reports a task that the
   * scheduler moved between two of its VMX instructions, and a HostCpu handle kept across a migration.
   */
  private vmxCpu(mnemonic: string, handle: LogicalProcessor): LogicalProcessor {
    const cpu = this.current;
    const moves = this.movesSinceVmx;
    if (moves.length > 0) {
      const bug = this.lastVmxCpu >= 0 ? vmxAfterMigration(mnemonic, cpu, this.lastVmxCpu, moves) : null;
      if (bug !== null) this.log.printk(cpu, `${KERN_ERR}${bug}`);
      this.movesSinceVmx = NO_MOVES;
    }
    this.lastVmxCpu = cpu;
    // Once per migration, not once per VMWRITE of the sequence that follows it.
    if (handle.id !== cpu && !this.staleHandleReported) {
      this.staleHandleReported = true;
      this.log.printk(cpu, `${KERN_ERR}${vmxThroughStaleHandle(mnemonic, handle.id, cpu, moves)}`);
    }
    return this.machine.cpus[cpu]!;
  }

  // ===================================================================================== memory
  kmalloc(size: number, flags: GfpFlags = 'GFP_KERNEL'): bigint {
    if (flags === 'GFP_KERNEL') this.might_sleep('kmalloc(GFP_KERNEL)');
    return this.slab.kmalloc(size, false);
  }
  kzalloc(size: number, flags: GfpFlags = 'GFP_KERNEL'): bigint {
    if (flags === 'GFP_KERNEL') this.might_sleep('kzalloc(GFP_KERNEL)');
    return this.slab.kmalloc(size, true);
  }
  kfree(va: bigint): void {
    const r = this.slab.kfree(va);
    if (r === 'invalid' || r === 'double-free') {
      this.log.printk(this.current, `${KERN_ERR}BUG: kfree(${hexLower(BigInt.asUintN(64, va))}): ${r === 'double-free' ? 'double free' : 'not a kmalloc address'}`);
    }
  }
  ksize(va: bigint): number {
    return this.slab.ksize(va);
  }

  /** alloc_pages(): 2^order physically contiguous pages, not zeroed; null when out of memory. */
  alloc_pages(order: number, flags: GfpFlags = 'GFP_KERNEL'): Page | null {
    if (flags === 'GFP_KERNEL') this.might_sleep('alloc_pages(GFP_KERNEL)');
    const pfn = this.pages.allocPages(order, false);
    return pfn < 0 ? null : { pfn };
  }
  __free_pages(page: Page, order: number): void {
    if (!this.pages.freePages(page.pfn, order)) this.log.printk(this.current, `${KERN_ERR}BUG: __free_pages: pfn ${page.pfn} order ${order} was not allocated`);
  }
  page_address(page: Page): bigint {
    return PAGE_OFFSET + BigInt(page.pfn) * BigInt(PAGE_SIZE);
  }
  page_to_phys(page: Page): bigint {
    return BigInt(page.pfn) * BigInt(PAGE_SIZE);
  }
  /** __get_free_pages(): like alloc_pages, but returns the direct-map address (0n on failure). */
  __get_free_pages(order: number, flags: GfpFlags = 'GFP_KERNEL'): bigint {
    const p = this.alloc_pages(order, flags);
    return p === null ? 0n : this.page_address(p);
  }
  __get_free_page(flags: GfpFlags = 'GFP_KERNEL'): bigint {
    return this.__get_free_pages(0, flags);
  }
  get_zeroed_page(flags: GfpFlags = 'GFP_KERNEL'): bigint {
    if (flags === 'GFP_KERNEL') this.might_sleep('get_zeroed_page(GFP_KERNEL)');
    const pfn = this.pages.allocPages(0, true);
    return pfn < 0 ? 0n : PAGE_OFFSET + BigInt(pfn * PAGE_SIZE);
  }
  free_pages(va: bigint, order: number): void {
    if (va === 0n) return;
    if (classifyAddress(va) !== 'direct-map') {
      this.log.printk(this.current, `${KERN_ERR}BUG: free_pages(${hexLower(BigInt.asUintN(64, va))}): not a page-allocator address`);
      return;
    }
    this.__free_pages({ pfn: Number((va - PAGE_OFFSET) / BigInt(PAGE_SIZE)) }, order);
  }
  free_page(va: bigint): void {
    this.free_pages(va, 0);
  }

  /** vmalloc(): virtually contiguous, built from pages that are NOT physically adjacent. */
  vmalloc(size: number): bigint {
    this.might_sleep('vmalloc()');
    if (!Number.isInteger(size) || size <= 0) return 0n;
    const count = Math.ceil(size / PAGE_SIZE);
    const pfns = this.pages.allocScattered(count);
    if (pfns === null) return 0n;
    const start = this.vmallocNext;
    // A guard page after each area, as Linux leaves one.
    this.vmallocNext += BigInt((count + 1) * PAGE_SIZE);
    pfns.forEach((pfn, i) => {
      const va = start + BigInt(i * PAGE_SIZE);
      this.vmallocMap.set(va, pfn);
      this.mapVmallocPage(va, pfn);
    });
    this.vmallocAreas.set(start, pfns);
    return start;
  }
  vzalloc(size: number): bigint {
    const va = this.vmalloc(size);
    if (va !== 0n) this.memset(va, 0, Math.ceil(size / PAGE_SIZE) * PAGE_SIZE);
    return va;
  }
  vfree(va: bigint): void {
    const pfns = this.vmallocAreas.get(va);
    if (pfns === undefined) {
      if (va !== 0n) this.log.printk(this.current, `${KERN_ERR}BUG: vfree(${hexLower(BigInt.asUintN(64, va))}): not a vmalloc area`);
      return;
    }
    pfns.forEach((pfn, i) => {
      this.vmallocMap.delete(va + BigInt(i * PAGE_SIZE));
      this.pages.freePages(pfn, 0);
    });
    this.vmallocAreas.delete(va);
  }
  /** vmalloc_to_pfn(): the page frame behind one page of a vmalloc area. */
  vmalloc_to_pfn(va: bigint): number {
    return this.vmallocMap.get(va & ~0xfffn) ?? 0;
  }

  /**
   * virt_to_phys(): correct for the direct map (kmalloc, __get_free_pages) and the kernel image.
   * For vmalloc addresses it returns what Linux returns — a meaningless number — and warns like
   * CONFIG_DEBUG_VIRTUAL, because vmalloc memory is not physically contiguous.
   */
  virt_to_phys(va: bigint): bigint {
    const kind = classifyAddress(va);
    if (kind !== 'direct-map' && kind !== 'kernel-image') {
      this.log.printk(this.current, `${KERN_WARNING}WARNING: virt_to_phys used for non-linear address: ${hexLower(BigInt.asUintN(64, va))} (${kind === 'vmalloc' ? 'vmalloc memory is only virtually contiguous; use kmalloc or alloc_pages' : kind})`);
    }
    return linuxPhysAddr(va);
  }
  __pa(va: bigint): bigint {
    return this.virt_to_phys(va);
  }
  phys_to_virt(pa: bigint): bigint {
    return PAGE_OFFSET + pa;
  }
  __va(pa: bigint): bigint {
    return this.phys_to_virt(pa);
  }

  // ---- kernel-virtual memory access (what C code does with a pointer) ----
  // Little-endian; an access that crosses a page boundary is split, as the CPU splits it (the two
  // pages of a vmalloc area need not be physically adjacent).
  read8(va: bigint): number { return this.memory.read8(this.translatePage(va, 'read')); }
  read16(va: bigint): number { return Number(this.read(va, 2)); }
  read32(va: bigint): number { return Number(this.read(va, 4)); }
  read64(va: bigint): bigint { return this.read(va, 8); }
  write8(va: bigint, v: number): void { this.memory.write8(this.translatePage(va, 'write'), v & 0xff); }
  write16(va: bigint, v: number): void { this.write(va, 2, BigInt(v & 0xffff)); }
  write32(va: bigint, v: number): void { this.write(va, 4, BigInt(v >>> 0)); }
  write64(va: bigint, v: bigint): void { this.write(va, 8, BigInt.asUintN(64, v)); }
  memset(va: bigint, byte: number, length: number): void {
    for (let i = 0; i < length; i++) this.write8(va + BigInt(i), byte);
  }
  readBytes(va: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.read8(va + BigInt(i));
    return out;
  }
  writeBytes(va: bigint, bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.write8(va + BigInt(i), bytes[i]!);
  }

  private read(va: bigint, size: 2 | 4 | 8): bigint {
    if ((va & 0xfffn) + BigInt(size) <= 0x1000n) return this.memory.read(this.translatePage(va, 'read'), size);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.read8(va + BigInt(i)));
    return v;
  }

  private write(va: bigint, size: 2 | 4 | 8, v: bigint): void {
    if ((va & 0xfffn) + BigInt(size) <= 0x1000n) return this.memory.write(this.translatePage(va, 'write'), size, v);
    for (let i = 0; i < size; i++) this.write8(va + BigInt(i), Number((v >> BigInt(8 * i)) & 0xffn));
  }

  private translatePage(va: bigint, access: 'read' | 'write'): number {
    switch (classifyAddress(va)) {
      case 'direct-map': {
        const pa = Number(va - PAGE_OFFSET);
        if (pa < this.ramBytes) return pa;
        break;
      }
      case 'kernel-image': {
        const off = Number(va - START_KERNEL_MAP);
        if (off < KERNEL_IMAGE_BYTES) return PHYS_KERNEL_START + off;
        break;
      }
      case 'vmalloc': {
        const pfn = this.vmallocMap.get(va & ~0xfffn);
        if (pfn !== undefined) return pfn * PAGE_SIZE + Number(va & 0xfffn);
        break;
      }
      default:
        break;
    }
    throw this.pageFault(va, access, va === 0n || va < 0x1000n ? 'a NULL pointer dereference' : 'an address that is not mapped');
  }

  private pageFault(va: bigint, access: 'read' | 'write', what: string): CpuFault {
    // Supervisor access to a not-present page: error code P=0, W/R per access, U/S=0.
    // See SDM Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)".
    return new CpuFault(14, access === 'write' ? 2 : 0, `kernel ${access} at ${hexLower(BigInt.asUintN(64, va))}: ${what}`, 'SDM Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)"');
  }

  private mapVmallocPage(va: bigint, pfn: number): void {
    // Walk PDPT → PD → PT for the vmalloc area, creating tables from the image's table pool.
    let table = imagePa(IMAGE.PDPT_VMALLOC);
    for (const shift of [30n, 21n]) {
      const slot = table + 8 * Number((va >> shift) & 511n);
      let e = this.memory.read64(slot);
      if ((e & 1n) === 0n) {
        const fresh = imagePa(this.vmallocTableNext);
        this.vmallocTableNext += PAGE_SIZE;
        this.memory.writeBytes(fresh, new Uint8Array(PAGE_SIZE));
        e = BigInt(fresh) | 3n;
        this.memory.write64(slot, e);
      }
      table = Number(e & 0x000f_ffff_ffff_f000n);
    }
    this.memory.write64(table + 8 * Number((va >> 12n) & 511n), BigInt(pfn * PAGE_SIZE) | 3n | (1n << 63n));
    for (const lp of this.machine.cpus) lp.tlb.flushAll();
  }

  // ===================================================================================== host entries
  /**
   * Give a TypeScript function an address in kernel text, for HOST_RIP: when a VM exit loads that
   * RIP, the machine calls `fn` on that CPU (as the CPU would run the code found there).
   */
  hostEntry(name: string, fn: HostEntry): bigint {
    const va = imageVa(this.textNext);
    this.textNext += 0x40;
    if (this.textNext > IMAGE.TEXT + IMAGE.TEXT_BYTES) throw new Error('out of kernel text for host entry points');
    const entry = { name, fn };
    this.entries.set(va, entry);
    this.entriesByLpRip.set(Number(BigInt.asIntN(64, va)), entry);
    // The machine stops an LP whose VM exit (or failed VM entry) loads this address from HOST_RIP, and run() calls
    // `fn`. A host entry, not a breakpoint: breakpoints make the CPU run one instruction at a time, guests included.
    this.machine.addHostEntry?.(va);
    return va;
  }
  /** The host entry registered at `rip`, if any. */
  entryAt(rip: bigint): { name: string; fn: HostEntry } | undefined {
    return this.entries.get(BigInt.asUintN(64, rip));
  }
  /** `entryAt(lp.getReg('rip'))`, without making a BigInt of RIP. */
  private entryAtLp(lp: LogicalProcessor): { name: string; fn: HostEntry } | undefined {
    return this.entriesByLpRip.get(lp.rip);
  }
  /** Call the host entry point an LP has just jumped to (the machine's run loop does this). */
  enterHost(lp: LogicalProcessor): boolean {
    const entry = this.entryAtLp(lp);
    if (entry === undefined) return false;
    // Saved in locals, not an object: this runs on every VM exit, which allocates nothing.
    const savedCurrent = this.current, savedLastVmxCpu = this.lastVmxCpu, savedMoves = this.movesSinceVmx;
    this.current = lp.id;
    this.lastVmxCpu = -1;
    this.movesSinceVmx = NO_MOVES;
    this.preemptCount++; // exit handlers run with interrupts off
    this.hostEntryDepth++;
    // The function runs in kernel text and returns to the idle loop. A VMRESUME or VMLAUNCH in it that ends in a
    // VM-entry failure loads HOST_RIP, which may be this same entry: RIP then names an entry again, and the run
    // loop calls it, as the CPU would jump there (a new arrival, not the stop the machine just reported).
    lp.rip = IDLE_RIP;
    if (lp.executor !== null) {
      lp.executor.hitBreakpoint = NaN;
      lp.executor.atHostEntry = NaN;
    }
    try {
      if (!hasOwnHostBases(lp, this.ownBases[lp.id]!) && !this.foreignHostReported.has(lp.id)) {
        this.foreignHostReported.add(lp.id);
        this.log.printk(lp.id, `${KERN_ERR}${foreignHostState(lp, this.hostCpus.length)}`);
      }
      if (this.callQueue[lp.id]!.length > 0) this.takeCallFunctionIpi(lp);
      entry.fn(this, this.hostCpus[lp.id]!);
    } catch (e) {
      const oops = oopsFromError(e, lp.id, ++this.oopsCount);
      this.log.printk(lp.id, `${KERN_ERR}${oops.text}`);
      lp.activity = 'hlt';
    } finally {
      this.hostEntryDepth--;
      this.preemptCount--;
      this.current = savedCurrent;
      this.lastVmxCpu = savedLastVmxCpu;
      this.movesSinceVmx = savedMoves;
    }
    return true;
  }

  /**
   * Run the machine (guests in VMX non-root operation, host entry points on VM exits) until every CPU
   * is idle, one shuts down, or `maxInstructions` guest instructions have run. A host entry point that
   * returns without resuming a guest leaves its CPU in the kernel's idle loop (HLT with interrupts off).
   * Host entries that keep landing at HOST_RIP without running a guest instruction (a failed VM entry, retried
   * forever) end the run as 'budget' after MAX_HOST_CALLS_WITHOUT_GUEST calls. `until`, checked after each host
   * entry, ends the run early (reason 'budget' with instructions to spare).
   */
  run(opts: { maxInstructions: number; until?: () => boolean }): KernelRunResult {
    const machine = this.machine;
    if (machine.run === undefined) throw new Error('this kernel was booted without a runnable machine');
    let left = opts.maxInstructions;
    let executed = 0;
    let hostCalls = 0;
    // Host entries called with no guest instruction in between: a handler whose VMRESUME fails into a VM-entry
    // failure, forever, never spends the budget. Stop such a loop as if it had.
    let idleCalls = 0;
    for (;;) {
      const r = machine.run({ maxInstructions: Math.max(0, left) });
      executed += r.instructions;
      left -= r.instructions;
      idleCalls = r.instructions === 0 ? idleCalls + 1 : 0;
      if (idleCalls > MAX_HOST_CALLS_WITHOUT_GUEST) return { reason: 'budget', instructions: executed, hostCalls };
      const atEntry = r.reason === 'host-entry' || r.reason === 'breakpoint';
      if (!atEntry || r.lp === undefined || this.entryAtLp(r.lp) === undefined) {
        return { ...r, instructions: executed, hostCalls };
      }
      const lp = r.lp;
      this.enterHost(lp);
      hostCalls++;
      // Back in the guest (VMRESUME), or at a host entry again (a failed VM entry loaded HOST_RIP): go on.
      // Otherwise the function returned without either: the CPU idles.
      const goesOn = (lp.vmx?.nonRoot ?? false) || this.entryAtLp(lp) !== undefined;
      if (!goesOn) this.idle(lp);
      if (left <= 0 || opts.until?.() === true) return { reason: 'budget', instructions: executed, hostCalls };
    }
  }

  /** Park an LP in the kernel's idle loop. */
  idle(lp: LogicalProcessor): void {
    lp.setReg('rip', imageVa(IMAGE.TEXT + IDLE_HLT));
    lp.setReg('rflags', lp.getReg('rflags') & ~0x200n);
    lp.activity = 'hlt';
  }

  /** Stack top of a CPU's kernel stack (a good HOST_RSP for a small hypervisor). */
  kernelStackTop(cpu: number): bigint {
    return imageVa(perCpuOffset(cpu, IMAGE.PERCPU_STACK_TOP));
  }

  // ===================================================================================== modules
  insmod(mod: KernelModule): LoadResult {
    if (this.modules.has(mod.name)) return { ok: false, errno: 17, message: `insmod: ERROR: could not insert module ${mod.name}: File exists` };
    let rc: number | void;
    try {
      rc = mod.init(this);
    } catch (e) {
      const oops = oopsFromError(e, this.current, ++this.oopsCount);
      this.log.printk(this.current, `${KERN_ERR}${oops.text}`);
      return { ok: false, errno: -1, message: `insmod ${mod.name}: the kernel oopsed while loading the module (Segmentation fault)`, oops };
    }
    if (typeof rc === 'number' && rc !== 0) {
      const errno = rc < 0 ? -rc : rc;
      if (rc > 0) this.log.printk(this.current, `${KERN_WARNING}${mod.name}: init returned positive ${rc}; module_init must return 0 or -errno`);
      return { ok: false, errno, message: `insmod: ERROR: could not insert module ${mod.name}: ${errnoName(errno || EINVAL)}` };
    }
    this.modules.set(mod.name, mod);
    return { ok: true };
  }

  rmmod(name: string): LoadResult {
    const mod = this.modules.get(name);
    if (mod === undefined) return { ok: false, errno: 2, message: `rmmod: ERROR: Module ${name} is not currently loaded` };
    this.modules.delete(name);
    try {
      mod.exit?.(this);
    } catch (e) {
      const oops = oopsFromError(e, this.current, ++this.oopsCount);
      this.log.printk(this.current, `${KERN_ERR}${oops.text}`);
      return { ok: false, errno: -1, message: `rmmod ${name}: the kernel oopsed while unloading the module`, oops };
    }
    return { ok: true };
  }

  isLoaded(name: string): boolean {
    return this.modules.has(name);
  }
}

/** "No migration since the last VMX instruction", shared so that a VM exit allocates no array (never pushed to). */
const NO_MOVES: Migration[] = [];

/** A 32-bit finalizer (MurmurHash3's fmix32): turns seeds 1, 2, 3… into unrelated generator states. */
function mixSeed(seed: number): number {
  let h = seed >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0 || 1;
}

/** A sleeping lock (struct mutex): DEFINE_MUTEX is `new Mutex()`. */
export class Mutex {
  locked = false;
}

/** Per-CPU data (DEFINE_PER_CPU / alloc_percpu). */
export class PerCpu<T> {
  constructor(
    private readonly kernel: Kernel,
    private readonly values: T[],
  ) {}
  /** per_cpu(var, cpu) */
  get(cpu: number): T {
    return this.values[cpu]!;
  }
  set(cpu: number, value: T): void {
    this.values[cpu] = value;
  }
  /** this_cpu_ptr(): the current CPU's value (call with preemption disabled). */
  this_cpu(): T {
    return this.values[this.kernel.smp_processor_id()]!;
  }
}


