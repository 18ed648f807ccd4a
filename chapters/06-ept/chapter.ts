import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 6,
  slug: '06-ept',
  title: 'EPT',
  summary: 'Give the guest its own physical address space: detect EPT, build an EPTP from IA32_VMX_EPT_VPID_CAP, identity-map guest memory with the largest pages the model allows, map pages on demand from EPT violations, report misconfigurations, and watch writes to a page with the INVEPT that makes a permission change take effect.',
  objectives: [
    'Say what EPT translates (guest-physical to host-physical) and why every guest paging-structure access is itself translated: the two-dimensional walk.',
    'Read IA32_VMX_EPT_VPID_CAP and build an EPTP that uses only what the processor allows, reporting a request it cannot meet.',
    'Write EPT entries bit for bit: permissions, memory type, page size — 1-GByte and 2-MByte pages only where the capability allows them — from physically contiguous tables.',
    'Decode an EPT violation\'s exit qualification and GUEST_PHYSICAL_ADDRESS, fix the cause and resume; tell a violation (fixable, retried) from a misconfiguration (report and stop).',
    'Know what the processor caches from EPT, and invalidate it with the INVEPT type the capability offers after taking a permission away.',
  ],
  exercises: [
    {
      id: 'eptp',
      title: 'EPT support and the EPT pointer',
      file: 'eptp.ts',
      test: 'eptp.test.ts',
      points: 20,
      hints: [
        'Two questions, in order: may "activate secondary controls" be 1 (IA32_VMX_PROCBASED_CTLS bit 63), and may "enable EPT" be 1 (IA32_VMX_PROCBASED_CTLS2 bit 33)? Read CTLS2 only after the first is yes: on a CPU without secondary controls that MSR does not exist and RDMSR raises #GP.',
        'eptpFromCapabilities checks, in this order: cap bit 6 (4-level walk), a memory type (WB if bit 14, else UC if bit 8), A/D asked for → cap bit 21, pml4 & 0xfff = 0, pml4 >> maxPhysAddr = 0. Each failure is { ok: false, error } naming the bit, e.g. "bit 21".',
        'eptp = pml4 | (WB ? 6n : 0n) | (3n << 3n) | (accessedDirty ? 1n << 6n : 0n). A 4-KByte aligned PML4 at 5000H on a WB model with A/D gives 0x505e.',
      ],
    },
    {
      id: 'identity-map',
      title: 'An identity map with the largest pages',
      file: 'identity-map.ts',
      test: 'identity-map.test.ts',
      points: 25,
      hints: [
        'A 4-level EPT: PML4 (bits 47:39 of the guest-physical address), PDPT (38:30), PD (29:21), PT (20:12). A 1-GByte page is a PDPTE with bit 7 set, a 2-MByte page a PDE with bit 7 set; below the leaf level each entry points to the next table with bits 2:0 = 111b.',
        'For each gpa from 0 to bytes in steps of the page size: walk from the PML4 down to the leaf level; at each level, index = (gpa >> (12 + 9 * (level - 1))) & 0x1ff; if the entry is 0, get_zeroed_page() a table (push it on tables.pages) and write virt_to_phys(it) | 7n.',
        'The leaf: gpa | EPT_RWX | EPT_MEMORY_TYPE_WB | (leaf level > 1 ? EPT_PAGE_SIZE : 0n). Read the next table through k.phys_to_virt(entry & EPT_ADDRESS_MASK). In the part: readEptCapability → buildIdentityMap(v.k, cap, BigInt(v.k.ramBytes)) → eptpFromCapabilities(cap, tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) }) → vmwrite(v.cpu, \'EPT_POINTER\', eptp).',
      ],
    },
    {
      id: 'ept-violation',
      title: 'EPT violations: map on demand',
      file: 'violation.ts',
      test: 'violation.test.ts',
      points: 25,
      hints: [
        'An EPT violation is a fault: GUEST_RIP is the instruction that made the access, and VM_EXIT_INSTRUCTION_LEN is undefined. Fix the mapping and RESUME — never SKIP. The address is GUEST_PHYSICAL_ADDRESS (with the offset), not the qualification.',
        'decodeEptViolation: bits 0, 1, 2 the access, 3, 4, 5 what the entries allowed, 7 linear address valid; bit 8 means something only when bit 7 is 1: 1 = the final page, 0 = a guest paging-structure entry (the guest\'s own page walk).',
        'mapPage4k: for shift of [39n, 30n, 21n], slot = table + 8n * ((gpa >> shift) & 0x1ffn); allocate missing tables (allocEptTable) with entry = virt_to_phys(next) | EPT_RWX; then the PTE = (hpa & ~0xfffn) | permissions | EPT_MEMORY_TYPE_WB. Exit 49: return stop(`EPT misconfiguration at guest-physical 0x…`).',
      ],
    },
    {
      id: 'write-watch',
      title: 'A write-watched page and INVEPT',
      file: 'write-watch.ts',
      test: 'write-watch.test.ts',
      points: 30,
      hints: [
        'Granting a permission needs no INVEPT (a cached mapping that does not allow the access is walked again), but taking one away does: the processor may keep using the cached writable mapping. The VMCALL handler that re-protects the page must INVEPT.',
        'inveptType: no bit 20 → error (#UD); bit 25 → 1n; bit 26 → 2n; neither → an error that says INVEPT would fail with error 28. The descriptor is [eptp, 0n]. invalidateEpt: cpu.invept(type, descriptor[0]), then chapter 2\'s vmxStatusOf(cpu).',
        'splitToPte: walk as in mapPage4k; when an entry has bit 7 set at shift 30n or 21n, allocate a table of 512 entries: (base + i * (1n << (shift - 9n))) | (entry & 0xfffn), with bit 7 cleared when the new entries are 4-KByte PTEs; point the old entry at it with | EPT_RWX. Return the address of the PTE for gpa.',
      ],
    },
  ],
};

export default chapter;
