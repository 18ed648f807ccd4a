import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 5,
  slug: '05-exits',
  title: 'VM exits',
  summary: 'Grow the first launch into a hypervisor: dispatch VM exits by basic reason, advance RIP only where the instruction length is defined, and emulate CPUID, RDMSR/WRMSR with an MSR bitmap, port I/O for a virtual serial port, control-register accesses with masks and shadows, and a VMCALL ABI.',
  objectives: [
    'Say what a VM exit saves and loads, and where a handler finds the guest\'s registers (RSP and RIP in the VMCS, the others in the register file).',
    'Dispatch by the basic exit reason (bits 15:0), and treat bit 31 — a failed VM entry — as a report, never as an exit to handle.',
    'Read the exit qualification of CR accesses and I/O instructions, and know which exit-information fields are defined for which exits.',
    'Advance RIP by VM_EXIT_INSTRUCTION_LEN only for exits caused by an instruction; leave it for faults you inject.',
    'Decide what the guest\'s CPU is: CPUID with VMX hidden and a hypervisor leaf, MSRs through a bitmap with #GP(0) for the ones you refuse.',
    'Build MSR and I/O bitmaps bit for bit, including the MSRs that always exit and the I/O access that wraps at FFFFH.',
    'Own the VMX-fixed bits of CR0 and CR4 with guest/host masks and read shadows, so the guest sees its own values and VM entry sees legal ones.',
    'Define a hypercall ABI that checks the caller\'s privilege and every guest pointer, and changes nothing it does not document.',
  ],
  exercises: [
    {
      id: 'exit-dispatch',
      title: 'The VM-exit dispatcher',
      file: 'hypervisor.ts',
      test: 'dispatch.test.ts',
      points: 25,
      hints: [
        'Three places decide what happens next: bit 31 of VM_EXIT_REASON (chapter 4\'s diagnoseLaunch(cpu, \'host-rip\') already reads it), the handler table (handlers[exit.reason]), and the outcome of VMRESUME (diagnoseLaunch(cpu, \'fallthrough\')). A failed VM entry is reported, never dispatched.',
        'dispatchExit: no handler → stop(`unhandled VM exit: reason ${n} (${exitReasonByNumber(n)?.name}) …`); otherwise call it and check the result with isExitAction — anything else becomes a stop. skipInstruction: INSTRUCTION_EXITS.has(exit.reason) first; only then VMREAD GUEST_RIP and VM_EXIT_INSTRUCTION_LEN (1–15) and VMWRITE their sum.',
        'vmexit: const d = diagnoseLaunch(cpu, \'host-rip\'); if (d.kind !== \'vm-exit\') { end(k, cpu, { failure: d }); return; } log.exits.push(d.reason); const action = dispatchExit(vcpu!, { reason: d.reason, qualification: d.qualification }, handlers); stop → end(k, cpu, { stopped: action.why }); skip → skipInstruction, end on error; then cpu.vmresume() and end(k, cpu, { failure }) if diagnoseLaunch(cpu, \'fallthrough\') is not \'no-vmfail\'.',
      ],
    },
    {
      id: 'cpuid-emulation',
      title: 'CPUID: the CPU the guest sees',
      file: 'cpuid.ts',
      test: 'cpuid.test.ts',
      points: 15,
      hints: [
        'virtualCpuid is a pure function of the host\'s answer: special-case leaf 1 (two bits of ECX), 40000000H (the signature) and 40000001H–4FFFFFFFH (zeros), and pass every other leaf through. Keep values unsigned with x >>> 0.',
        'Leaf 1: ecx = ((r.ecx & ~CPUID_1_ECX_VMX) | CPUID_1_ECX_HYPERVISOR) >>> 0. Leaf 40000000H: { eax: HYPERVISOR_LEAF, ebx: signatureWord(HYPERVISOR_SIGNATURE, 0), ecx: signatureWord(HYPERVISOR_SIGNATURE, 4), edx: signatureWord(HYPERVISOR_SIGNATURE, 8) }.',
        'cpuidPart: { name: \'cpuid\', handlers: { [EXIT_REASON.EXIT_REASON_CPUID]: (v) => { … } } }. In the handler: leaf = Number(v.cpu.readGpr(\'rax\') & 0xffffffffn), subleaf the same from rcx; r = virtualCpuid((l, s) => v.cpu.cpuid(l, s), leaf, subleaf); v.cpu.writeGpr(\'rax\', BigInt(r.eax >>> 0)) and so on; return SKIP — and leave GUEST_RIP alone, SKIP moves it.',
      ],
    },
    {
      id: 'msr-bitmap',
      title: 'RDMSR, WRMSR and the MSR bitmap',
      file: 'msr.ts',
      test: 'msr.test.ts',
      points: 20,
      hints: [
        'Four 1-KByte quarters: read-low at 0, read-high at 1024, write-low at 2048, write-high at 3072. The low range is 0–1FFFH, the high range C0000000H–C0001FFFH; any other MSR has no bit (null) and always exits. Inside a range, n = msr & 0x1fff.',
        'The bit: { byte: quarter + (n >> 3), bit: n & 7 } — least significant bit first. Injection: VM_ENTRY_EXCEPTION_ERROR_CODE = errorCode (when not null), then VM_ENTRY_INTR_INFO_FIELD = (INTR_INFO_VALID | INTR_INFO_DELIVER_CODE | (INTR_TYPE_HARD_EXCEPTION << 8) | vector) >>> 0, which is 80000B0DH for #GP(0).',
        'setup: bitmap = v.k.get_zeroed_page() (0n: return { ok: false, error }); interceptMsr read and write for each of INTERCEPTED_MSRS; vmwrite MSR_BITMAP = v.k.virt_to_phys(bitmap). rdmsr: msr = Number(rcx & 0xffffffffn); IA32_FEATURE_CONTROL → (v.cpu.rdmsr(0x3a) & ~6n) | 1n, the scratch MSR → scratch, anything else → injectHardwareException(v.cpu, VECTOR_GP, 0) and RESUME. Answer with rax = value & 0xffffffffn, rdx = value >> 32n, then SKIP.',
      ],
    },
    {
      id: 'io-serial',
      title: 'Port I/O and a virtual serial port',
      file: 'io.ts',
      test: 'io.test.ts',
      points: 20,
      hints: [
        'Everything an IN/OUT exit needs is in the qualification: the size (bits 2:0, plus 1), the direction (bit 3: 1 = IN), string (bit 4), REP (bit 5), an immediate port (bit 6) and the port (bits 31:16). The data is in RAX: OUT sends AL, AX or EAX, and IN must write the same width back.',
        'ioBitmapPosition: bitmap A below 8000H, else B; n = port & 0x7fff; { byte: n >> 3, bit: n & 7 }. ioAccessExits: if (port + size - 1 > 0xffff) return true — the wrap exits whatever the bits; otherwise true if isSet(p) for any p from port to port + size - 1.',
        'handle: io = decodeIoQualification(exit.qualification); io.string → stop(…). OUT: for each byte i, if port + i is a COM1 port, uart.write(port + i - COM1_BASE, Number((rax >> BigInt(8 * i)) & 0xffn)). IN: value |= BigInt(COM1 ? uart.read(…) : UNCLAIMED) << BigInt(8 * i); mask = size === 4 ? all 64 bits : (1n << BigInt(8 * size)) - 1n; writeGpr(\'rax\', (rax & ~mask) | value); SKIP.',
      ],
    },
    {
      id: 'cr-shadows',
      title: 'Control registers: masks and read shadows',
      file: 'cr-access.ts',
      test: 'cr-access.test.ts',
      points: 20,
      hints: [
        'A mask bit of 1 makes that bit host-owned: the guest reads it from the shadow, and a write that would give it another value than the shadow\'s exits. Own the bits VMX fixes, show the guest what it wrote (the shadow), and give the CPU the fixed value (GUEST_CRn).',
        'decodeCrAccess: cr = q & 0xf, access = [\'mov-to-cr\', \'mov-from-cr\', \'clts\', \'lmsw\'][(q >> 4) & 3], lmswMemory = bit 6, gpr = (q >> 8) & 0xf, lmswSource = (q >> 16) & 0xffff. Register 4 is RSP: after a VM exit the register file holds HOST_RSP, so read and write GUEST_RSP for it.',
        'hostOwnedBits = BigInt.asUintN(64, fixed0 | ~fixed1). setup: masks from v.cpu.rdmsr(0x486 … 0x489), CR0_READ_SHADOW = GUEST_CR0, CR4_READ_SHADOW = GUEST_CR4 & ~(1n << 13n). movToCr, CR0: cr0Faults(cpu, value) ? gp(cpu) : write2(cpu, [\'GUEST_CR0\', adjustCr0(rd, value)], [\'CR0_READ_SHADOW\', value]); CR4 likewise; CR3: GUEST_CR3 = value (bit 63 dropped when GUEST_CR4.PCIDE = 1).',
      ],
    },
    {
      id: 'vmcall-abi',
      title: 'VMCALL: a hypercall ABI',
      file: 'vmcall.ts',
      test: 'vmcall.test.ts',
      points: 15,
      hints: [
        'The ABI is a contract with the guest: the function number is all 64 bits of RAX, only RAX and RBX change, and the handler returns SKIP. Never touch GUEST_RFLAGS or any other register.',
        'Check the caller first: (GUEST_SS_AR_BYTES >>> 5) & 3 is the CPL (SS.DPL always equals it). Not 0 → RAX = VMCALL_EPERM and SKIP. Then switch on RAX: PING, WRITE, EXIT_COUNT (v.exits.length), default VMCALL_ENOSYS.',
        'inGuestMemory: size = 4096n << BigInt(guest.order); pa >= guest.pa && length <= size && pa - guest.pa <= size - length (no sum that can overflow). WRITE: length > VMCALL_MAX_WRITE → EINVAL; outside → EFAULT; else bytes = v.k.readBytes(v.k.phys_to_virt(pa), Number(length)), out.push(...bytes), printk, RAX = length.',
      ],
    },
  ],
};

export default chapter;
