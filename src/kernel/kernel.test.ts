import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { IoSpace } from '../machine/io.ts';
import { LogicalProcessor, ACCESS_READ } from '../machine/lp.ts';
import { PhysicalMemory } from '../machine/memory.ts';
import { GDT_ENTRY_TSS_SELECTOR, IMAGE, __KERNEL_CS, __KERNEL_DS, imageVa } from './boot.ts';
import { Kernel, type KernelModule } from './kernel.ts';
import { PAGE_OFFSET, VMALLOC_START } from './layout.ts';
import { ENODEV } from './errno.ts';
import { bootHost, enterVmx, read, runGuests, runRecordedGuest, write, writeReferenceVmcs } from './testing/reference-vm.ts';

function boot(cpus = 1, opts: ConstructorParameters<typeof Kernel>[1] = {}) {
  const memory = new PhysicalMemory({ ramBytes: 64 * 1024 * 1024 });
  const io = new IoSpace();
  const lps = Array.from({ length: cpus }, (_, id) => new LogicalProcessor({ id, memory, io, bsp: id === 0 }));
  return new Kernel({ memory, cpus: lps }, opts);
}

/** The CPU's own page walk (src/machine/paging.ts), as an oracle for the kernel's page tables. */
function cpuTranslate(k: Kernel, va: bigint): number {
  return k.cpu().lp.translate(Number(BigInt.asIntN(64, va)), ACCESS_READ);
}

describe('boot state (what chapter 4 copies into the host-state area)', () => {
  test('every CPU is in 64-bit mode at CPL 0 with Linux selectors', () => {
    const k = boot(2);
    for (const cpu of k.allCpus()) {
      expect(cpu.lp.bits).toBe(64);
      expect(cpu.readSelector('cs')).toBe(__KERNEL_CS);
      expect(cpu.readSelector('ss')).toBe(__KERNEL_DS);
      expect(cpu.str()).toBe(GDT_ENTRY_TSS_SELECTOR);
      expect(cpu.readCr0() & 0x80000001n).toBe(0x80000001n); // PG, PE
      expect(cpu.readCr4() & (1n << 13n)).toBe(0n); // VMXE is the module's job
      expect(cpu.readCr3()).toBe(BigInt(k.cr3));
    }
    // Per-CPU GDTs and TSSs, as on Linux: the host-state bases differ per CPU.
    expect(k.allCpus()[0]!.sgdt().base).not.toBe(k.allCpus()[1]!.sgdt().base);
  });

  test('the GDT in memory holds what the segment registers cache', () => {
    const k = boot();
    const gdt = k.cpu().sgdt();
    expect(gdt.limit).toBe(16 * 8 - 1);
    expect(k.read64(gdt.base + BigInt(__KERNEL_CS))).toBe(0x00af9b000000ffffn);
    expect(k.read64(gdt.base + BigInt(__KERNEL_DS))).toBe(0x00cf93000000ffffn);
    // The TSS descriptor's base (split over 16 bytes) is TR's hidden base.
    const lo = k.read64(gdt.base + BigInt(GDT_ENTRY_TSS_SELECTOR));
    const hi = k.read64(gdt.base + BigInt(GDT_ENTRY_TSS_SELECTOR) + 8n);
    const base = ((lo >> 16n) & 0xffffffn) | (((lo >> 56n) & 0xffn) << 24n) | ((hi & 0xffffffffn) << 32n);
    expect(base).toBe(k.cpu().lp.getSegment('tr').base);
  });

  test('the direct map in the page tables agrees with virt_to_phys (checked by the CPU page walk)', () => {
    const k = boot();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 * 1024 * 1024 - 1 }), (pa) => {
        const va = k.phys_to_virt(BigInt(pa));
        expect(cpuTranslate(k, va)).toBe(pa);
        expect(k.virt_to_phys(va)).toBe(BigInt(pa));
      }),
      { numRuns: 200 },
    );
  });
});

describe('allocators', () => {
  test('kmalloc returns direct-map memory that is not zeroed; kzalloc zeroes', () => {
    const k = boot();
    const a = k.kmalloc(4096);
    expect(a >= PAGE_OFFSET && a < VMALLOC_START).toBe(true);
    expect([...k.readBytes(a, 64)].some((b) => b !== 0)).toBe(true);
    const z = k.kzalloc(4096);
    expect([...k.readBytes(z, 4096)].every((b) => b === 0)).toBe(true);
  });

  test('power-of-two kmalloc sizes are naturally aligned and physically contiguous', () => {
    const k = boot();
    for (const size of [8, 64, 512, 4096, 8192, 16384]) {
      const va = k.kmalloc(size);
      const pa = k.virt_to_phys(va);
      expect(pa % BigInt(Math.min(size, 4096)), `size ${size}`).toBe(0n);
      for (let off = 0; off < size; off += 4096) expect(cpuTranslate(k, va + BigInt(off))).toBe(Number(pa) + off);
    }
  });

  test('the same seed gives the same garbage; another seed gives other garbage', () => {
    const bytes = (seed: number) => {
      const k = boot(1, { seed });
      return [...k.readBytes(k.kmalloc(64), 64)];
    };
    expect(bytes(7)).toEqual(bytes(7));
    expect(bytes(7)).not.toEqual(bytes(8));
  });

  test('kfree poisons freed objects with 0x6b and reports a double free', () => {
    const k = boot();
    const a = k.kmalloc(32);
    k.kfree(a);
    expect([...k.readBytes(a, 32)].every((b) => b === 0x6b)).toBe(true);
    k.kfree(a);
    expect(k.dmesg()).toMatch(/BUG: kfree\(0x[0-9a-f]+\): double free/);
  });

  test('get_zeroed_page is zeroed and page aligned; alloc_pages(order) is aligned to its size', () => {
    const k = boot();
    const p = k.get_zeroed_page();
    expect(k.virt_to_phys(p) % 4096n).toBe(0n);
    expect([...k.readBytes(p, 4096)].every((b) => b === 0)).toBe(true);
    const block = k.alloc_pages(3)!;
    expect(block.pfn % 8).toBe(0);
  });

  test('vmalloc memory is virtually contiguous but its pages are not physically adjacent', () => {
    const k = boot();
    const va = k.vmalloc(4 * 4096);
    // A 64-bit store that straddles two pages of the area lands in two distant frames.
    k.write64(va + 4096n - 4n, 0x1122334455667788n);
    expect(k.read64(va + 4096n - 4n)).toBe(0x1122334455667788n);
    const pfns = [0, 1, 2, 3].map((i) => k.vmalloc_to_pfn(va + BigInt(i * 4096)));
    for (let i = 1; i < 4; i++) expect(Math.abs(pfns[i]! - pfns[i - 1]!)).toBeGreaterThan(1);
    // The CPU's page walk through the kernel's CR3 finds the same frames.
    pfns.forEach((pfn, i) => expect(cpuTranslate(k, va + BigInt(i * 4096))).toBe(pfn * 4096));
  });

  test('virt_to_phys on vmalloc memory gives what Linux gives: a meaningless address, with a warning', () => {
    const k = boot();
    const va = k.vmalloc(4096);
    const pa = k.virt_to_phys(va);
    expect(pa >= 1n << 46n).toBe(true); // beyond any MAXPHYADDR
    expect(pa).not.toBe(BigInt(k.vmalloc_to_pfn(va) * 4096));
    expect(k.dmesg()).toMatch(/virt_to_phys used for non-linear address.*vmalloc/);
  });
});

describe('modules, oopses and host entries', () => {
  test('a fault in module code is an oops naming the instruction, the cause and the SDM section', () => {
    const k = boot();
    const mod: KernelModule = { name: 'bad', init: (kern) => void kern.cpu().rdmsr(0xdead) };
    const r = k.insmod(mod);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.oops?.vector).toBe(13);
    expect(r.oops?.instruction).toBe('RDMSR');
    expect(r.oops?.cause).toMatch(/DEAD/i);
    expect(r.oops?.sdm).toMatch(/RDMSR/);
    expect(k.dmesg()).toMatch(/general protection fault: 0000 \[#1\]/);
    expect(k.isLoaded('bad')).toBe(false);
  });

  test('a NULL dereference is a page-fault oops', () => {
    const k = boot();
    const r = k.insmod({ name: 'null', init: (kern) => void kern.read32(0n) });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.oops?.cause).toMatch(/NULL pointer/);
  });

  test('init returning -ENODEV fails the load with the errno name; 0 loads; rmmod calls exit', () => {
    const k = boot();
    const r = k.insmod({ name: 'nodev', init: () => -ENODEV });
    expect(r).toMatchObject({ ok: false, errno: ENODEV });
    if (!r.ok) expect(r.message).toMatch(/No such device/);
    let exited = false;
    expect(k.insmod({ name: 'good', init: () => 0, exit: () => void (exited = true) })).toEqual({ ok: true });
    expect(k.rmmod('good')).toEqual({ ok: true });
    expect(exited).toBe(true);
  });

  test('on_each_cpu runs on every CPU with preemption off; smp_processor_id in preemptible code warns', () => {
    const k = boot(3);
    const seen: number[] = [];
    k.on_each_cpu((cpu) => seen.push(cpu, k.smp_processor_id()));
    expect(seen).toEqual([0, 0, 1, 1, 2, 2]);
    expect(k.dmesg()).not.toMatch(/preemptible/);
    k.smp_processor_id();
    expect(k.dmesg()).toMatch(/BUG: using smp_processor_id\(\) in preemptible/);
  });

  test('a preemptible task migrates at sleep points; get_cpu pins it', () => {
    const k = boot(4, { seed: 3 });
    const cpus = new Set<number>();
    for (let i = 0; i < 50; i++) {
      k.kmalloc(16);
      cpus.add(k.cpu().id);
    }
    expect(cpus.size).toBeGreaterThan(1);
    const pinned = k.get_cpu();
    for (let i = 0; i < 50; i++) {
      k.kmalloc(16);
      expect(k.cpu().id).toBe(pinned);
    }
    k.put_cpu();
  });

  test('hostEntry hands out kernel-text addresses; enterHost calls the function on that CPU', () => {
    const k = boot(2);
    const calls: number[] = [];
    const rip = k.hostEntry('vmexit_handler', (_kern, cpu) => calls.push(cpu.id));
    expect(rip >= 0xffffffff80000000n).toBe(true);
    const lp = k.allCpus()[1]!.lp;
    lp.setReg('rip', rip);
    expect(k.enterHost(lp)).toBe(true);
    expect(calls).toEqual([1]);
    lp.setReg('rip', rip + 1n);
    expect(k.enterHost(lp)).toBe(false);
  });

  test('an exit handler that VMREADs and returns without a VM entry parks its CPU: nothing after it runs', () => {
    // The guest leaves RAX pointing at unmapped memory: any stray instruction run as host code would fault on it.
    const run = runRecordedGuest({ source: 'bits 64\nmov eax, 0x80000000\ncpuid' });
    expect(run.exits.length, run.why()).toBe(1);
    const lp = run.host.kernel.cpu().lp;
    expect(lp.activity).toBe('hlt');
    expect(lp.vmx?.nonRoot).toBe(false);
    expect(lp.lastFault, 'no host instruction ran after the handler').toBeNull();
  });

  test('a VMRESUME in an exit handler whose VM entry fails lands at HOST_RIP: the run loop calls the handler again', () => {
    // The failed entry loads host state, so RIP is HOST_RIP, the entry that is running: the CPU jumps there again.
    // See SDM Vol. 3C, "VM-Entry Failures During or After Loading Guest State".
    const host = bootHost();
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    const seen: bigint[] = [];
    const rip = k.hostEntry('vmexit', (_k, c) => {
      const reason = read(c, 'VM_EXIT_REASON');
      seen.push(reason);
      if (reason !== 10n) return; // the entry failure: the handler returns without resuming, and the CPU idles
      write(host, c, 'GUEST_RFLAGS', 0); // RFLAGS bit 1 clear: VM entry fails with exit reason 33
      c.vmresume();
    });
    writeReferenceVmcs(host, cpu, rip, 'bits 64\ncpuid\nhlt\n');
    cpu.vmlaunch();
    const r = runGuests(host, 1_000);
    expect(seen).toEqual([10n, 0x80000021n]);
    expect(r.reason).toBe('idle');
    expect(cpu.lp.activity).toBe('hlt');
  });

  test('host entries are not breakpoints: the guest runs in blocks (the fast path), and each VM exit reaches its handler', () => {
    // A breakpoint makes the executor run one instruction at a time; a host entry must not, or every guest under a
    // hypervisor would lose the block cache and the JIT. Counted, not timed: Executor.blocksRun.
    const host = bootHost();
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    const reasons: bigint[] = [];
    let atExit = 0;
    const rip = k.hostEntry('vmexit', (_k, c) => {
      const reason = read(c, 'VM_EXIT_REASON');
      reasons.push(reason);
      if (reason !== 10n) return; // HLT: done, the CPU idles
      atExit = executor.blocksRun;
      write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + read(c, 'VM_EXIT_INSTRUCTION_LEN'));
      c.vmresume();
    });
    const executor = cpu.lp.executor as unknown as { blocksRun: number; breakpoints: Set<number> };
    writeReferenceVmcs(host, cpu, rip, 'bits 64\nmov ecx, 2000\n.loop:\nadd eax, ecx\ndec ecx\njnz .loop\ncpuid\nmov ecx, 2000\n.again:\ndec ecx\njnz .again\nhlt\n');
    cpu.vmlaunch();
    const before = executor.blocksRun;
    const r = runGuests(host, 100_000);
    expect(reasons).toEqual([10n, 12n]);
    expect(r.hostCalls).toBe(2);
    expect(r.reason).toBe('idle');
    expect(executor.breakpoints.size, 'the kernel sets no breakpoints for its host entries').toBe(0);
    // The loops before and after the CPUID exit ran in blocks (with a breakpoint at HOST_RIP, none would).
    expect(atExit - before, 'blocks before the VM exit').toBeGreaterThan(0);
    expect(executor.blocksRun - atExit, 'blocks after VMRESUME').toBeGreaterThan(0);
  });

  test('a fault in host code reaches the oops entry through the IDT: the run loop calls it and the CPU idles', () => {
    // Every IDT vector of the host kernel points at its oops entry (a host entry point, not code): arriving there by
    // event delivery must stop the CPU like a VM exit to HOST_RIP does, not run the bytes at that address.
    const host = bootHost();
    const k = host.kernel, lp = k.cpu().lp;
    const at = imageVa(IMAGE.TEXT + 0x600);
    k.writeBytes(at, [0x0f, 0x0b]); // UD2
    lp.setReg('rip', at);
    lp.activity = 'active';
    const r = k.run({ maxInstructions: 1_000 });
    expect(r.hostCalls, 'the #UD was delivered to the oops entry, which the run loop called').toBe(1);
    expect(r.reason).toBe('all-halted');
    expect(lp.activity).toBe('hlt');
  });

  test('a real breakpoint still stops a guest under a hypervisor, and the run goes on to the next VM exit', () => {
    const host = bootHost();
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    let calls = 0;
    const rip = k.hostEntry('vmexit', () => { calls++; });
    const g = writeReferenceVmcs(host, cpu, rip, 'bits 64\nnop\nhere:\nnop\nhlt\n');
    cpu.vmlaunch();
    host.machine.addBreakpoint(g.rip + 1n);
    const r = host.machine.run({ maxInstructions: 100 });
    expect(r.reason).toBe('breakpoint');
    expect(cpu.lp.vmx?.nonRoot).toBe(true);
    const rest = runGuests(host, 100);
    expect(rest.hostCalls).toBe(1);
    expect(calls).toBe(1);
  });

  test('a handler that retries a failing VM entry forever runs no guest instruction: the run still ends (budget)', () => {
    const host = bootHost();
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    let calls = 0;
    const rip = k.hostEntry('vmexit', (_k, c) => {
      calls++;
      write(host, c, 'GUEST_RFLAGS', 0);
      c.vmresume();
    });
    writeReferenceVmcs(host, cpu, rip, 'bits 64\ncpuid\nhlt\n');
    cpu.vmlaunch();
    const r = runGuests(host, 1_000);
    expect(r.reason).toBe('budget');
    expect(calls).toBeGreaterThan(100);
  });
});

describe('bootHost options', () => {
  test('board: the MTRRs are as that board\'s firmware left them (default pc)', async () => {
    const { readMtrrState } = await import('../machine/memtype/read-mtrrs.ts');
    const varCount = (board?: 'pc' | 'surface-book-3') => {
      const s = readMtrrState(bootHost({ model: 'icelake-i5-1035g1', board, ramMiB: 64 }).machine.cpus[0]!)!;
      return s.variable.filter((p) => (p.mask & 0x800n) !== 0n).length;
    };
    expect(varCount(), 'pc: one valid variable MTRR (the MMIO hole)').toBe(1);
    expect(varCount('pc'), 'pc, asked for').toBe(1);
    expect(varCount('surface-book-3'), 'surface-book-3: seven UC ranges').toBe(7);
  });
});
