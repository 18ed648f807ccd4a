// EPT in the CPU, end to end: guests run by the reference VM under EPT tables the test builds, on models with and
// without 1-GByte pages, EPT accessed/dirty flags and advanced VM-exit information. See SDM Vol. 3C, "EPT
// Translation Mechanism", "EPT-Induced VM Exits", "Exit Qualification for EPT Violations" and "Caching Translation
// Information".
import { describe, expect, it } from 'vitest';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs, type Host } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { jitStats } from '../../machine/jit.ts';
import { VMX_CONTROL } from '../controls.ts';
import { UNDEFINED_32, UNDEFINED_64 } from '../exit/info.ts';
import { qualificationOf } from './qualification.ts';

const R = 1n, W = 2n, X = 4n, WB = 6n << 3n, LARGE = 1n << 7n, ACCESSED = 1n << 8n, DIRTY = 1n << 9n;
const RWX = R | W | X, XU = 1n << 10n;
const ADDR = 0x000ffffffffff000n;

/** An EPT that maps the first GiB identically, with 4-KByte tables where the test wants to change single pages. */
class TestEpt {
  readonly pml4: bigint;
  private readonly pdpt: bigint;
  private readonly pds = new Map<number, bigint>();
  private readonly pts = new Map<number, bigint>();
  /** `all`: the permissions of every entry the builder writes (RWX, plus XU for mode-based execute control). */
  constructor(private readonly k: Kernel, readonly oneGig: boolean, private readonly all = RWX) {
    this.pml4 = this.page();
    this.pdpt = this.page();
    this.k.write64(this.va(this.pml4), this.pdpt | all);
    // 1-GByte page, or a page directory of 2-MByte pages.
    if (oneGig) this.k.write64(this.va(this.pdpt), all | LARGE | WB);
    else this.k.write64(this.va(this.pdpt), this.pd(0) | all);
  }
  eptp(ad: boolean): bigint { return this.pml4 | 6n | (3n << 3n) | (ad ? 1n << 6n : 0n); }
  /** The host-virtual address of the EPT PTE that maps `gpa` (splitting its 1-GByte and 2-MByte pages first). */
  pte(gpa: bigint): bigint {
    const gi = Number(gpa >> 30n), mi = Number(gpa >> 21n);
    if (gi !== 0) throw new Error('test EPT maps the first GiB only');
    if (this.oneGig && !this.pds.has(0)) this.k.write64(this.va(this.pdpt), this.pd(0) | this.all);
    let pt = this.pts.get(mi);
    if (pt === undefined) {
      pt = this.page();
      for (let i = 0n; i < 512n; i++) this.k.write64(this.va(pt) + 8n * i, ((BigInt(mi) << 21n) | (i << 12n)) | this.all | WB);
      this.pts.set(mi, pt);
      this.k.write64(this.va(this.pds.get(0)!) + 8n * BigInt(mi & 511), pt | this.all);
    }
    return this.va(pt) + 8n * ((gpa >> 12n) & 511n);
  }
  set(gpa: bigint, value: bigint): void { this.k.write64(this.pte(gpa), value); }
  get(gpa: bigint): bigint { return this.k.read64(this.pte(gpa)); }
  private pd(g: number): bigint {
    let pd = this.pds.get(g);
    if (pd === undefined) {
      pd = this.page();
      for (let i = 0n; i < 512n; i++) this.k.write64(this.va(pd) + 8n * i, ((BigInt(g) << 30n) | (i << 21n)) | this.all | LARGE | WB);
      this.pds.set(g, pd);
    }
    return pd;
  }
  private page(): bigint { return this.k.virt_to_phys(this.k.get_zeroed_page()); }
  private va(pa: bigint): bigint { return this.k.phys_to_virt(pa); }
}

interface EptExit {
  readonly reason: bigint; readonly qualification: bigint; readonly gpa: bigint; readonly gla: bigint;
  readonly rip: bigint; readonly length: bigint; readonly idtVectoring: bigint;
  /** Guest RCX and RDX at the exit. */
  readonly rcx: bigint; readonly rdx: bigint;
}

interface EptRun {
  readonly host: Host; readonly exits: EptExit[]; readonly ept: TestEpt; readonly labels: ReadonlyMap<string, number>;
  readonly data: bigint; readonly eptp: bigint;
  why(): string;
}

/**
 * Boot `model`, build a data page and an EPT, run `source` (RBX = the data page's address, identity-mapped by guest
 * paging) with EPT on. `onExit` decides after each exit: 'resume' (past the instruction for CPUID), 'retry' (same
 * RIP) or 'stop'.
 */
function runUnderEpt(opts: {
  model: string; source: (data: bigint) => string; oneGig?: boolean; ad?: boolean; entryPermissions?: bigint;
  setup?: (ept: TestEpt, data: bigint, host: Host) => void;
  onExit?: (e: EptExit, run: { ept: TestEpt; cpu: HostCpu; host: Host; eptp: bigint; data: bigint; n: number }) => 'resume' | 'retry' | 'stop';
}): EptRun {
  const host = bootHost({ model: opts.model });
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const data = k.virt_to_phys(k.get_zeroed_page());
  const ept = new TestEpt(k, opts.oneGig ?? false, opts.entryPermissions ?? RWX);
  const eptp = ept.eptp(opts.ad ?? false);
  const exits: EptExit[] = [];
  const rip = k.hostEntry('ept_exit_handler', (_k, c) => {
    const e: EptExit = {
      reason: read(c, 'VM_EXIT_REASON'), qualification: read(c, 'EXIT_QUALIFICATION'), gpa: read(c, 'GUEST_PHYSICAL_ADDRESS'),
      gla: read(c, 'GUEST_LINEAR_ADDRESS'), rip: read(c, 'GUEST_RIP'), length: read(c, 'VM_EXIT_INSTRUCTION_LEN'),
      idtVectoring: read(c, 'IDT_VECTORING_INFO_FIELD'), rcx: c.readGpr('rcx'), rdx: c.readGpr('rdx'),
    };
    exits.push(e);
    const next = opts.onExit?.(e, { ept, cpu: c, host, eptp, data, n: exits.length }) ?? (e.reason === 10n ? 'resume' : 'stop');
    if (next === 'stop') return;
    if (next === 'resume') write(host, c, 'GUEST_RIP', e.rip + e.length);
    c.vmresume();
  });
  const g = writeReferenceVmcs(host, cpu, rip, opts.source(data));
  const caps = host.vmx[cpu.id]!.caps.effective;
  const proc2 = VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT;
  write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') | BigInt(VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS));
  write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', (caps.proc2.allowed0 | proc2) >>> 0);
  write(host, cpu, 'EPT_POINTER', eptp);
  opts.setup?.(ept, data, host);
  cpu.vmlaunch();
  runGuests(host, 100_000);
  return { host, exits, ept, labels: g.labels, data, eptp, why: () => explain(host, `exits: ${exits.map((e) => `${e.reason}@${e.rip.toString(16)} q=${e.qualification.toString(16)}`).join(', ')}`) };
}

const SKYLAKE = 'skylake-i5-6300u'; // 1-GByte pages, EPT A/D flags, no advanced VM-exit information
const IVYBRIDGE = 'ivybridge-i5-3320m'; // no 1-GByte pages, no EPT A/D flags
const ICELAKE = 'icelake-i5-1035g1'; // advanced VM-exit information for EPT violations
const label = (run: EptRun, name: string): bigint => BigInt(run.labels.get(name)!);
const EXIT_CPUID = 10n, EXIT_HLT = 12n, EXIT_EPT_VIOLATION = 48n, EXIT_EPT_MISCONFIG = 49n;

/** A guest linear address in PML4 slot 100, which the reference guest does not use. */
const XD_PAGE_LINEAR = 100n << 39n;
const PTE_PRESENT = 1n, PTE_RW = 2n, PTE_XD = 1n << 63n;

/** Map the guest's linear `la` with the 4-KByte PTE `pte` in the guest tables at `cr3` (tables made read/write). */
function mapGuestPage(k: Kernel, cr3: bigint, la: bigint, pte: bigint): void {
  let table = cr3 & ADDR;
  for (const shift of [39n, 30n, 21n]) {
    const slot = k.phys_to_virt(table) + 8n * ((la >> shift) & 511n);
    let e = k.read64(slot);
    if ((e & PTE_PRESENT) === 0n) k.write64(slot, (e = k.virt_to_phys(k.get_zeroed_page()) | PTE_PRESENT | PTE_RW));
    table = e & ADDR;
  }
  k.write64(k.phys_to_virt(table) + 8n * ((la >> 12n) & 511n), pte);
}

describe('EPT translation of guest memory', () => {
  for (const [model, oneGig] of [[SKYLAKE, true], [IVYBRIDGE, false], [ICELAKE, false]] as const) {
    it(`${model}${oneGig ? ' (1-GByte page)' : ''}: the guest runs through EPT; a remapped page reaches another host page`, () => {
      let other = 0n;
      const run = runUnderEpt({
        model, oneGig,
        source: (d) => `bits 64\n mov rbx, ${d}\n mov dword [rbx + 0x10], 0x5a5a\n mov eax, [rbx + 0x20]\n mov [rbx + 0x30], eax\n cpuid\n hlt`,
        setup: (ept, data, host) => {
          const k = host.kernel;
          other = k.virt_to_phys(k.get_zeroed_page());
          k.write32(k.phys_to_virt(other) + 0x20n, 0x77);
          ept.set(data, other | RWX | WB); // guest-physical `data` → host-physical `other`
        },
      });
      expect(run.exits.map((e) => e.reason), run.why()).toEqual([EXIT_CPUID, EXIT_HLT]);
      const k = run.host.kernel;
      expect(k.read32(k.phys_to_virt(other) + 0x10n)).toBe(0x5a5a);
      expect(k.read32(k.phys_to_virt(other) + 0x30n)).toBe(0x77); // the load read the other page too
      expect(k.read32(k.phys_to_virt(run.data) + 0x10n)).toBe(0);
    });
  }
});

describe('EPT violations (exit reason 48)', () => {
  it('a read of a not-present guest-physical page: exact qualification, GPA with offset, linear address, RIP', () => {
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\n nop\nload: mov rax, [rbx + 0x123]\n hlt`,
      setup: (ept, data) => ept.set(data, 0n),
    });
    expect(run.exits.length, run.why()).toBe(1);
    const e = run.exits[0]!;
    expect(e.reason).toBe(EXIT_EPT_VIOLATION);
    expect(e.qualification).toBe(qualificationOf({ READ: true, GLA_VALID: true, GLA_TRANSLATED: true }));
    expect(e.gpa).toBe(run.data + 0x123n);
    expect(e.gla).toBe(run.data + 0x123n);
    expect(e.rip).toBe(label(run, 'load'));
    expect(e.length).toBe(BigInt(UNDEFINED_32));
    expect(run.host.vmx[0]!.lastDiagnosis()?.rule).toBe('ept-not-present');
  });

  it('with advanced VM-exit information: bits 9–11 describe the guest linear address', () => {
    const run = runUnderEpt({
      model: ICELAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\nload: mov rax, [rbx + 0x8]\n hlt`,
      setup: (ept, data) => ept.set(data, 0n),
    });
    // The reference guest maps with supervisor, read/write, executable 2-MByte pages.
    expect(run.exits[0]?.qualification, run.why()).toBe(qualificationOf({ READ: true, GLA_VALID: true, GLA_TRANSLATED: true, READ_WRITE_PAGE: true }));
  });

  it('with advanced VM-exit information: bit 11 is set when guest paging maps the address execute-disable', () => {
    // A 4-KByte guest page at an otherwise unused linear address: present, read-only, XD (EFER.NXE is on: the guest
    // runs with the host's EFER). Bit 10 is the AND of R/W (0 here), bit 11 the OR of XD over the guest entries.
    const run = runUnderEpt({
      model: ICELAKE,
      source: () => `bits 64\n mov rbx, ${XD_PAGE_LINEAR}\nload: mov rax, [rbx + 0x8]\n hlt`,
      setup: (ept, data, host) => {
        mapGuestPage(host.kernel, read(host.kernel.cpu(), 'GUEST_CR3'), XD_PAGE_LINEAR, data | PTE_PRESENT | PTE_XD);
        ept.set(data, 0n);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.gla).toBe(XD_PAGE_LINEAR + 8n);
    expect(e.gpa).toBe(run.data + 8n);
    expect(e.qualification).toBe(qualificationOf({ READ: true, GLA_VALID: true, GLA_TRANSLATED: true, EXECUTE_DISABLE_PAGE: true }));
  });

  it('a write to a read-only page: the write bit, what the entries allowed, the faulting RIP; nothing written', () => {
    const run = runUnderEpt({
      model: IVYBRIDGE,
      source: (d) => `bits 64\n mov rbx, ${d}\n mov eax, [rbx]\n mov ecx, 0x99\nstore: mov [rbx + 0x8], ecx\n hlt`,
      setup: (ept, data) => ept.set(data, data | R | X | WB),
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.qualification).toBe(qualificationOf({ WRITE: true, READABLE: true, EXECUTABLE: true, GLA_VALID: true, GLA_TRANSLATED: true }));
    expect(e.rip).toBe(label(run, 'store'));
    expect(e.gpa).toBe(run.data + 8n);
    expect(run.host.kernel.read32(run.host.kernel.phys_to_virt(run.data) + 8n)).toBe(0);
  });

  it('an instruction fetch from a non-executable page', () => {
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\n jmp rbx`,
      setup: (ept, data, host) => {
        host.kernel.write8(host.kernel.phys_to_virt(data), 0xf4); // HLT, never fetched
        ept.set(data, data | R | W | WB);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.qualification).toBe(qualificationOf({ FETCH: true, READABLE: true, WRITABLE: true, GLA_VALID: true, GLA_TRANSLATED: true }));
    expect(e.rip).toBe(run.data);
    expect(e.gla).toBe(run.data);
  });

  it("the guest's own A/D-flag update to a read-only paging structure: a violation on the paging-structure entry", () => {
    // The guest's PD (guest CR3 + 2000H) is read-only in EPT: the walk reads it, the accessed-flag update cannot
    // write it. Bit 8 = 0: the access was to a paging-structure entry.
    let pd = 0n;
    const run = runUnderEpt({
      model: IVYBRIDGE,
      source: (d) => `bits 64\n mov rbx, ${d}\n mov eax, [rbx]\n hlt`,
      setup: (ept, _data, host) => {
        pd = read(host.kernel.cpu(), 'GUEST_CR3') + 0x2000n;
        ept.set(pd, pd | R | X | WB);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.qualification).toBe(qualificationOf({ READ: true, WRITE: true, READABLE: true, EXECUTABLE: true, GLA_VALID: true }));
    expect(e.gpa & ~0xfffn).toBe(pd);
  });
});

describe('EPT misconfigurations (exit reason 49)', () => {
  it('write without read: exit 49, the guest-physical address, qualification cleared', () => {
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\nload: mov eax, [rbx + 0x44]\n hlt`,
      setup: (ept, data) => ept.set(data, data | W | WB),
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_MISCONFIG);
    expect(e.gpa).toBe(run.data + 0x44n);
    expect(e.qualification).toBe(0n);
    expect(e.rip).toBe(label(run, 'load'));
    // Defined only for violations and instructions: undefined (poisoned) here.
    expect(e.gla).toBe(UNDEFINED_64);
    expect(e.length).toBe(BigInt(UNDEFINED_32));
    expect(run.host.vmx[0]!.lastDiagnosis()?.rule).toBe('ept-write-without-read');
  });
});

describe('EPT accessed and dirty flags', () => {
  it('set by guest reads and writes, and by the guest page walk (paging-structure accesses count as writes)', () => {
    let cr3 = 0n;
    const code = { page: 0n };
    const run = runUnderEpt({
      model: SKYLAKE, ad: true,
      source: (d) => `bits 64\n mov rbx, ${d}\n mov eax, [rbx]\n cpuid\n mov [rbx + 0x1000], eax\n cpuid\n hlt`,
      setup: (ept, data, host) => {
        cr3 = read(host.kernel.cpu(), 'GUEST_CR3');
        code.page = read(host.kernel.cpu(), 'GUEST_RIP') & ~0xfffn;
        for (const p of [data, data + 0x1000n, cr3, cr3 + 0x1000n, cr3 + 0x2000n]) ept.pte(p);
      },
      onExit: (e, r) => {
        if (r.n === 1) {
          // After the read: the data page accessed, not dirty; the second page untouched.
          expect(r.ept.get(r.data) & (ACCESSED | DIRTY)).toBe(ACCESSED);
          expect(r.ept.get(r.data + 0x1000n) & (ACCESSED | DIRTY)).toBe(0n);
        }
        return e.reason === EXIT_CPUID ? 'resume' : 'stop';
      },
    });
    expect(run.exits.map((e) => e.reason), run.why()).toEqual([EXIT_CPUID, EXIT_CPUID, EXIT_HLT]);
    expect(run.ept.get(run.data) & (ACCESSED | DIRTY)).toBe(ACCESSED);
    expect(run.ept.get(run.data + 0x1000n) & (ACCESSED | DIRTY)).toBe(ACCESSED | DIRTY);
    // The guest's PML4, PDPT and PD pages: accessed and dirty through the walk; the code page only accessed.
    for (const p of [cr3, cr3 + 0x1000n, cr3 + 0x2000n]) expect(run.ept.get(p) & (ACCESSED | DIRTY)).toBe(ACCESSED | DIRTY);
    expect(run.ept.get(code.page) & (ACCESSED | DIRTY)).toBe(ACCESSED);
    // The guest's own accessed flag in its PDE (2-MByte page) was set through EPT.
    expect(run.host.kernel.read64(run.host.kernel.phys_to_virt(cr3 + 0x2000n) + 8n * ((run.data >> 21n) & 511n)) & 0x20n).toBe(0x20n);
  });
});

describe('cached guest-physical mappings and INVEPT', () => {
  it('a permission change without INVEPT leaves the old translation in use (MOV to CR3 does not drop it); INVEPT single-context does', () => {
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64
 mov rbx, ${d}
 mov dword [rbx], 1
 cpuid
 mov rax, cr3
 mov cr3, rax
 mov dword [rbx], 2
 cpuid
second: mov dword [rbx], 3
 hlt`,
      onExit: (e, r) => {
        if (r.n === 1) r.ept.set(r.data, r.data | R | X | WB); // read-only, no INVEPT
        if (r.n === 2) {
          // Now invalidate: a different EPTP first (nothing changes), then this one.
          r.cpu.invept(1n, (r.eptp & ~ADDR) | 0x1000n);
          r.cpu.invept(1n, r.eptp);
        }
        return e.reason === EXIT_CPUID ? 'resume' : 'stop';
      },
    });
    const k = run.host.kernel;
    expect(run.exits.map((e) => e.reason), run.why()).toEqual([EXIT_CPUID, EXIT_CPUID, EXIT_EPT_VIOLATION]);
    expect(run.exits[2]!.rip).toBe(label(run, 'second'));
    expect(k.read32(k.phys_to_virt(run.data))).toBe(2); // the stale writable translation served the second write
  });
});

describe('EPTP switching (VMFUNC 0)', () => {
  it('the next access walks the new EPT', () => {
    let other = 0n;
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\n mov dword [rbx], 1\n xor eax, eax\n mov ecx, 1\n vmfunc\n mov dword [rbx], 2\n cpuid\n hlt`,
      setup: (_ept, data, host) => {
        const k = host.kernel, cpu = k.cpu();
        // A second EPT, the same but with `data` mapped to another host page; EPTP list = [first, second].
        const second = new TestEpt(k, false);
        other = k.virt_to_phys(k.get_zeroed_page());
        second.set(data, other | RWX | WB);
        const list = k.get_zeroed_page();
        k.write64(list, read(cpu, 'EPT_POINTER'));
        k.write64(list + 8n, second.eptp(false));
        write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', read(cpu, 'SECONDARY_VM_EXEC_CONTROL') | BigInt(VMX_CONTROL.SECONDARY_EXEC_ENABLE_VMFUNC));
        write(host, cpu, 'VM_FUNCTION_CONTROL', 1);
        write(host, cpu, 'EPTP_LIST_ADDRESS', k.virt_to_phys(list));
      },
    });
    const k = run.host.kernel;
    expect(run.exits.map((e) => e.reason), run.why()).toEqual([EXIT_CPUID, EXIT_HLT]);
    expect(k.read32(k.phys_to_virt(run.data))).toBe(1);
    expect(k.read32(k.phys_to_virt(other))).toBe(2);
  });
});

describe('EPT violations during event delivery', () => {
  it('INT n whose stack push hits a not-present page: IDT-vectoring information, the INT length, RIP of the INT', () => {
    let stack = 0n;
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\nsoft: int 0x30\nhandler: hlt`,
      setup: (ept, data, host) => {
        const k = host.kernel, cpu = k.cpu();
        const handler = read(cpu, 'GUEST_RIP') + 12n; // mov rbx, imm64 (10 bytes) + int imm8 (2 bytes)
        // A 64-bit interrupt gate for vector 30H in an IDT on the data page.
        const gate = k.phys_to_virt(data) + 16n * 0x30n;
        k.write64(gate, (handler & 0xffffn) | (0x08n << 16n) | (0x8en << 40n) | (((handler >> 16n) & 0xffffn) << 48n));
        k.write64(gate + 8n, handler >> 32n);
        write(host, cpu, 'GUEST_IDTR_BASE', data);
        write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
        stack = (read(cpu, 'GUEST_RSP') - 8n) & ~0xfffn;
        ept.set(stack, 0n);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.qualification).toBe(qualificationOf({ WRITE: true, GLA_VALID: true, GLA_TRANSLATED: true }));
    expect(e.gpa & ~0xfffn).toBe(stack);
    expect(e.gla).toBe(e.gpa);
    // Valid, type 4 (software interrupt), vector 30H (bit 12 is undefined here); the length of INT 30H; RIP of the INT.
    expect(e.idtVectoring & ~0x1000n).toBe(0x80000430n);
    expect(e.length).toBe(2n);
    expect(e.rip).toBe(label(run, 'soft'));
  });
});

describe('EPT violations while VM entry delivers an injected event', () => {
  const VALID = 1n << 31n, DELIVER_ERROR_CODE = 1n << 11n;
  const EXTERNAL_INTERRUPT = 0n << 8n, HARDWARE_EXCEPTION = 3n << 8n, SOFTWARE_INTERRUPT = 4n << 8n;
  const GP = 13n;
  it.each([
    { what: '#GP(18H) whose IDT is on a not-present page: a read of its gate', info: VALID | HARDWARE_EXCEPTION | DELIVER_ERROR_CODE | GP, errorCode: 0x18n, length: 0n, unmap: 'idt' as const },
    { what: 'external interrupt 40H whose stack push hits a not-present page', info: VALID | EXTERNAL_INTERRUPT | 0x40n, errorCode: 0n, length: 0n, unmap: 'stack' as const },
    { what: 'software interrupt 30H (INT n, length 2) whose stack push hits a not-present page', info: VALID | SOFTWARE_INTERRUPT | 0x30n, errorCode: 0n, length: 2n, unmap: 'stack' as const },
  ])('$what: exit 48 with the injected event as IDT-vectoring information, at the entry RIP', ({ info, errorCode, length, unmap }) => {
    let entryRip = 0n, stack = 0n;
    const seen = { errorCode: -1n, entryInfo: -1n };
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\nstart: mov rbx, ${d}\n hlt`,
      setup: (ept, data, host) => {
        const k = host.kernel, cpu = k.cpu();
        entryRip = read(cpu, 'GUEST_RIP');
        // 64-bit interrupt gates for the three vectors in an IDT on the data page, all pointing at the entry RIP.
        for (const vector of [GP, 0x30n, 0x40n]) {
          const gate = k.phys_to_virt(data) + 16n * vector;
          k.write64(gate, (entryRip & 0xffffn) | (0x08n << 16n) | (0x8en << 40n) | (((entryRip >> 16n) & 0xffffn) << 48n));
          k.write64(gate + 8n, entryRip >> 32n);
        }
        write(host, cpu, 'GUEST_IDTR_BASE', data);
        write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
        write(host, cpu, 'VM_ENTRY_INTR_INFO_FIELD', info);
        write(host, cpu, 'VM_ENTRY_EXCEPTION_ERROR_CODE', errorCode);
        write(host, cpu, 'VM_ENTRY_INSTRUCTION_LEN', length);
        // An external interrupt can be injected only with RFLAGS.IF = 1 (a guest-state check).
        write(host, cpu, 'GUEST_RFLAGS', read(cpu, 'GUEST_RFLAGS') | (1n << 9n));
        stack = (read(cpu, 'GUEST_RSP') - 8n) & ~0xfffn;
        ept.set(unmap === 'idt' ? data : stack, 0n);
      },
      onExit: (_e, r) => {
        seen.errorCode = read(r.cpu, 'IDT_VECTORING_ERROR_CODE');
        seen.entryInfo = read(r.cpu, 'VM_ENTRY_INTR_INFO_FIELD');
        return 'stop';
      },
    });
    expect(run.exits.length, run.why()).toBe(1);
    const e = run.exits[0]!;
    expect(e.reason).toBe(EXIT_EPT_VIOLATION);
    if (unmap === 'idt') {
      expect(e.qualification).toBe(qualificationOf({ READ: true, GLA_VALID: true, GLA_TRANSLATED: true }));
      expect(e.gla).toBe(run.data + 16n * GP);
    } else {
      expect(e.qualification).toBe(qualificationOf({ WRITE: true, GLA_VALID: true, GLA_TRANSLATED: true }));
      expect(e.gla & ~0xfffn).toBe(stack);
    }
    expect(e.gpa).toBe(e.gla);
    // The event VM entry was delivering: valid, type, vector, "error code valid" as injected (bit 12 is undefined).
    expect(e.idtVectoring & ~0x1000n).toBe(info);
    if ((info & DELIVER_ERROR_CODE) !== 0n) expect(seen.errorCode).toBe(errorCode);
    // A software interrupt's exit reports its instruction length; for the others the field is undefined.
    expect(e.length).toBe(length !== 0n ? length : BigInt(UNDEFINED_32));
    // Nothing of the guest ran: RIP is the one VM entry loaded. Every VM exit clears the VM-entry valid bit.
    expect(e.rip).toBe(entryRip);
    expect(seen.entryInfo & VALID).toBe(0n);
  });
});

describe('EPT violations in compiled code', () => {
  it('a loop that runs into a not-present page exits with its registers and RIP at the faulting store', () => {
    const compiledBefore = jitStats.compiled;
    const run = runUnderEpt({
      model: IVYBRIDGE,
      source: (d) => `bits 64
 mov rbx, ${d}
 xor ecx, ecx
top: mov rdx, rcx
 add rdx, 7
store: mov [rbx + rcx*8], rdx
 inc ecx
 cmp ecx, 1024
 jne top
 hlt`,
      setup: (ept, data) => ept.set(data + 0x1000n, 0n),
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.rip).toBe(label(run, 'store'));
    expect(e.gpa).toBe(run.data + 0x1000n);
    expect([e.rcx, e.rdx]).toEqual([512n, 519n]);
    const k = run.host.kernel;
    expect(k.read64(k.phys_to_virt(run.data) + 8n * 511n)).toBe(518n);
    expect(jitStats.compiled).toBeGreaterThan(compiledBefore); // the loop ran as compiled code
  });
});

describe('EPT violations of read-modify-write instructions', () => {
  // The operand is read with write intent: the violation is a "data write" even though the read finds the page
  // missing ("whether it also sets bit 0 is implementation-specific"; this processor does not). CMP only reads.
  it.each([
    ['add [m], r', 'add [rbx + 0x10], eax', { WRITE: true }],
    ['inc qword [m]', 'inc qword [rbx + 0x10]', { WRITE: true }],
    ['xchg [m], r', 'xchg [rbx + 0x10], eax', { WRITE: true }],
    ['lock cmpxchg [m], r', 'lock cmpxchg [rbx + 0x10], ecx', { WRITE: true }],
    ['cmp [m], r (a read)', 'cmp [rbx + 0x10], eax', { READ: true }],
  ])('%s on a not-present page', (_n, insn, access) => {
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rbx, ${d}\nrmw: ${insn}\n hlt`,
      setup: (ept, data) => ept.set(data, 0n),
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.rip).toBe(label(run, 'rmw'));
    expect(e.qualification).toBe(qualificationOf({ ...access, GLA_VALID: true, GLA_TRANSLATED: true }));
  });

  it('in compiled code: a loop of ADD [m], r that runs into a not-present page', () => {
    const compiledBefore = jitStats.compiled;
    const run = runUnderEpt({
      model: IVYBRIDGE,
      source: (d) => `bits 64
 mov rbx, ${d}
 xor ecx, ecx
 mov edx, 3
top:
rmw: add [rbx + rcx*8], rdx
 inc ecx
 cmp ecx, 1024
 jne top
 hlt`,
      setup: (ept, data) => ept.set(data + 0x1000n, 0n),
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.rip).toBe(label(run, 'rmw'));
    expect(e.gpa).toBe(run.data + 0x1000n);
    expect(e.rcx).toBe(512n);
    expect(e.qualification).toBe(qualificationOf({ WRITE: true, GLA_VALID: true, GLA_TRANSLATED: true }));
    expect(jitStats.compiled).toBeGreaterThan(compiledBefore);
  });
});

describe('combined TLB entries', () => {
  const source = (d: bigint) => `bits 64\n mov rbx, ${d}\n mov dword [rbx], 1\n cpuid\n mov eax, [rbx]\nstore: mov dword [rbx], 2\n hlt`;

  it('allow only what guest paging and EPT both allow (a page written before, now read-only in EPT)', () => {
    const run = runUnderEpt({
      model: IVYBRIDGE, source,
      onExit: (e, r) => {
        if (r.n === 1) {
          r.ept.set(r.data, r.data | R | X | WB);
          r.cpu.invept(2n, 0n);
        }
        return e.reason === EXIT_CPUID ? 'resume' : 'stop';
      },
    });
    // The read refilled the TLB; the guest's PTE is dirty and writable, EPT is not: the store must still exit.
    expect(run.exits.map((e) => e.reason), run.why()).toEqual([EXIT_CPUID, EXIT_EPT_VIOLATION]);
    expect(run.exits[1]!.rip).toBe(label(run, 'store'));
  });

  it('with EPT A/D flags, allow writes only once the EPT dirty flag is set (the first write sets it)', () => {
    const run = runUnderEpt({
      model: SKYLAKE, ad: true, source,
      setup: (ept, data) => { ept.pte(data); },
      onExit: (e, r) => {
        if (r.n === 1) {
          expect(r.ept.get(r.data) & DIRTY).toBe(DIRTY);
          r.ept.set(r.data, r.ept.get(r.data) & ~DIRTY); // the hypervisor harvests the dirty flag…
          r.cpu.invept(1n, r.eptp); // …and invalidates
        }
        return e.reason === EXIT_CPUID ? 'resume' : 'stop';
      },
    });
    expect(run.exits.map((e) => e.reason), run.why()).toEqual([EXIT_CPUID, EXIT_HLT]);
    // The read after INVEPT cached the page clean; the store walked EPT again and set the dirty flag.
    expect(run.ept.get(run.data) & (ACCESSED | DIRTY)).toBe(ACCESSED | DIRTY);
  });
});

describe('mode-based execute control for EPT', () => {
  /** Guest code `hlt` on the data page, reached with JMP; MBEC on; the data page's EPT permissions `perm`. */
  function fetchFromData(perm: bigint, userPage: boolean): EptRun {
    return runUnderEpt({
      model: ICELAKE, entryPermissions: RWX | XU,
      source: (d) => `bits 64\n mov rbx, ${d}\n jmp rbx`,
      setup: (ept, data, host) => {
        const k = host.kernel, cpu = k.cpu();
        k.write8(k.phys_to_virt(data), 0xf4);
        ept.set(data, data | perm | WB);
        write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', read(cpu, 'SECONDARY_VM_EXEC_CONTROL') | BigInt(VMX_CONTROL.SECONDARY_EXEC_MODE_BASED_EPT_EXEC));
        if (userPage) {
          // U/S = 1 in the guest's PML4E 0, PDPTE 0 and the PDE of the data page: a user-mode linear address.
          const cr3 = k.phys_to_virt(read(cpu, 'GUEST_CR3'));
          for (const entry of [cr3, cr3 + 0x1000n, cr3 + 0x2000n + 8n * (data >> 21n)]) k.write64(entry, k.read64(entry) | 4n);
        }
      },
    });
  }

  it('a supervisor-mode linear address needs X (bit 2); XU alone is not enough', () => {
    const run = fetchFromData(R | W | XU, false);
    expect(run.exits[0]?.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(run.exits[0]!.qualification).toBe(qualificationOf({
      FETCH: true, READABLE: true, WRITABLE: true, USER_EXECUTABLE: true, GLA_VALID: true, GLA_TRANSLATED: true, READ_WRITE_PAGE: true,
    }));
  });

  it('a user-mode linear address needs XU (bit 10), whatever the CPL', () => {
    const run = fetchFromData(R | W | X, true);
    expect(run.exits[0]?.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(run.exits[0]!.qualification).toBe(qualificationOf({
      FETCH: true, READABLE: true, WRITABLE: true, EXECUTABLE: true, GLA_VALID: true, GLA_TRANSLATED: true, USER_LINEAR: true, READ_WRITE_PAGE: true,
    }));
    const ok = fetchFromData(R | XU, true);
    expect(ok.exits.map((e) => e.reason), ok.why()).toEqual([EXIT_HLT]);
  });
});

describe('NMI unblocking due to IRET', () => {
  it('an IRET that unblocked NMIs and then reads its frame from a not-present page sets qualification bit 12', () => {
    const run = runUnderEpt({
      model: SKYLAKE,
      source: (d) => `bits 64\n mov rsp, ${d}\nreturn: iretq`,
      setup: (ept, data, host) => {
        write(host, host.kernel.cpu(), 'GUEST_INTERRUPTIBILITY_INFO', 8); // blocking by NMI
        ept.set(data, 0n);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXIT_EPT_VIOLATION);
    expect(e.qualification).toBe(qualificationOf({ READ: true, GLA_VALID: true, GLA_TRANSLATED: true, NMI_UNBLOCKING: true }));
    expect(e.rip).toBe(label(run, 'return'));
  });
});
