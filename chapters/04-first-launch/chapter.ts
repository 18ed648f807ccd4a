import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 4,
  slug: '04-first-launch',
  title: 'First launch',
  summary: 'Fill the host-state area from the running CPU, build a small 64-bit guest and its guest state, choose the controls, VMLAUNCH, and tell VMfailInvalid, VMfailValid and a failed VM entry apart.',
  objectives: [
    'Fill the host-state area from the CPU the module runs on: selectors with RPL and TI cleared, TR and its 64-bit base from the GDT, the kernel\'s own CR3, the per-CPU FS/GS bases.',
    'Build a 64-bit guest in memory you allocate (page tables, GDT, TSS, code) and derive its segment access rights from its GDT.',
    'Choose the controls a first launch needs with your chapter 3 adjustment, and report what the CPU refuses.',
    'Know the order of the VM-entry checks and their outcomes: VMfailValid 7 or 8, or a VM-entry failure with exit reason 33/34 and bit 31 set.',
    'Write a module whose VM-exit handler answers CPUID, resumes the guest, and on HLT turns VMX off and restores what a VM exit changed.',
  ],
  exercises: [
    {
      id: 'host-state',
      title: 'The host-state area',
      file: 'host-state.ts',
      test: 'host-state.test.ts',
      points: 20,
      hints: [
        'Everything comes from the running CPU: cpu.readCr0()/readCr4(), cpu.readSelector(\'cs\') and friends, cpu.str(), cpu.sgdt()/sidt(), cpu.readFsBase()/readGsBase(), cpu.rdmsr(MSR_IA32_SYSENTER_*). Except CR3: k.cr3 is the kernel\'s page tables, cpu.readCr3() belongs to whatever process ran insmod.',
        'Selectors: chapter 0\'s hostSelector clears exactly RPL and TI (sel & ~7). The TR base is not in any register you can read: take it from the TSS descriptor in the GDT at cpu.sgdt().base + (tr >> 3) * 8 — 16 bytes in IA-32e mode.',
        'systemSegmentBase: `BigInt(decodeDescriptor(k.read64(at)).base >>> 0) | (BigInt(k.read32(at + 8n) >>> 0) << 32n)`. Then one vmwrite per field, returning the first result that is not ok.',
      ],
    },
    {
      id: 'guest-state',
      title: 'A 64-bit guest and its guest state',
      file: 'guest-state.ts',
      test: 'guest-state.test.ts',
      points: 25,
      hints: [
        'One k.alloc_pages(GUEST_ORDER) block holds everything; zero it (alloc_pages does not). Without EPT the guest\'s "physical" addresses are real physical addresses: CR3, the table entries, GDTR base, RIP and RSP all use k.page_to_phys(page) + offset.',
        'Page tables: PML4[0] = pdpt | P | RW; PDPT[0] = pd | P | RW; PD[i] = i * 2 MBytes | P | RW | PS. GDT: code = flat | accessed | RW | code | S | P | L | G; data = flat | accessed | RW | S | P | D/B | G; TSS = limit 67H, base, type 11 (busy), P, base 63:32 in the next 8 bytes.',
        'guestSegment: decodeDescriptor(k.read64(k.phys_to_virt(g.gdtBase) + (selector & ~7))), limit = effectiveLimit, ar = accessRights(d), and for S = 0 add read32(at + 8) << 32 to the base. In writeGuestState, LDTR gets ar = AR_UNUSABLE, CR0 = adjustCr0(rdmsr, PE | ET | NE | PG), CR4 = adjustCr4(rdmsr, PAE), RFLAGS = 2, link pointer = 0xffffffffffffffffn.',
      ],
    },
    {
      id: 'launch-controls',
      title: 'The controls for a first launch',
      file: 'controls.ts',
      test: 'controls.test.ts',
      points: 15,
      hints: [
        'For each of the five kinds, call chapter 3\'s adjustControls(rdmsr, kind, FIRST_LAUNCH[kind].want | extra want, FIRST_LAUNCH[kind].avoid | extra avoid) and collect every error, tagged with its kind.',
        'Secondary controls count only when "activate secondary controls" (primary bit 31) is 1: set it (with a second adjustControls for proc) only if proc2 came out non-zero.',
        'writeControls: vmwrite the control fields and EXCEPTION_BITMAP, CR3_TARGET_COUNT, VM_EXIT_MSR_STORE_COUNT, VM_EXIT_MSR_LOAD_COUNT, VM_ENTRY_MSR_LOAD_COUNT, VM_ENTRY_INTR_INFO_FIELD = 0; SECONDARY_VM_EXEC_CONTROL only if proc has bit 31.',
      ],
    },
    {
      id: 'diagnose-launch',
      title: 'Did it launch?',
      file: 'diagnose.ts',
      test: 'diagnose.test.ts',
      points: 20,
      hints: [
        'Three outcomes, three places: CF = 1 (VMfailInvalid) and ZF = 1 (VMfailValid + VM_INSTRUCTION_ERROR) on the line after VMLAUNCH; bit 31 of VM_EXIT_REASON in the handler at HOST_RIP.',
        'On the fallthrough path, first ask inGuest(cpu): after a successful entry RFLAGS hold the guest\'s flags, which may well have ZF set. Then chapter 2\'s vmxStatusOf(cpu) does the CF/ZF work.',
        'At HOST_RIP: `const r = vmread(cpu, \'VM_EXIT_REASON\')`; bit 31 is `(r.value & VMX_EXIT_REASONS_FAILED_VMENTRY) !== 0`, the basic reason `r.value & 0xffff`; read EXIT_QUALIFICATION too.',
      ],
    },
    {
      id: 'first-launch',
      title: 'The first-launch module',
      file: 'launch.ts',
      test: 'launch.test.ts',
      points: 25,
      hints: [
        'init, in order: vmxOn → allocVmcs + loadVmcs → firstLaunchControls → buildGuest → k.hostEntry(name, vmexit) → writeControls, writeHostState, writeGuestState → cpu.vmlaunch() → diagnoseLaunch(cpu, \'fallthrough\'). Remember the GDTR/IDTR limits (cpu.sgdt().limit) before the first VM exit changes them.',
        'emulateCpuid: leaf = low 32 bits of cpu.lp.getGpr(RAX), subleaf = low 32 bits of RCX; cpu.cpuid(leaf, subleaf); setGpr each of RAX–RDX to BigInt(x >>> 0); GUEST_RIP += VM_EXIT_INSTRUCTION_LEN (never a fixed 2).',
        'teardown: cpu.vmclear(vmcs.pa), vmxOff(k, region), freeVmcs, freeGuest, then cpu.lp.lgdt(cpu.sgdt().base, savedGdtLimit) and the same for the IDT. After VMRESUME, call diagnoseLaunch(cpu, \'fallthrough\') again: only a failed VMRESUME gets there.',
      ],
    },
  ],
};

export default chapter;
