import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 7,
  slug: '07-mtrr',
  title: 'MTRR and memory types',
  summary: 'Give every guest-physical page the memory type the hardware would give it: read the MTRRs the firmware left, resolve a type by the SDM\'s precedence rules (fixed ranges, variable ranges, the default, the SMRR), split large pages that straddle two types, write the MTRR type into each EPT leaf, and combine the EPT type with the guest\'s PAT the way the processor does — then find and fix the map that loses a guest\'s serial output by mapping its UART WB.',
  objectives: [
    'Say what a memory type is (UC, WC, WT, WP, WB), why RAM works under any of them and a device does not, and why a hypervisor with EPT is the one that must get the type right.',
    'Read IA32_MTRRCAP and only the MTRR MSRs it announces: IA32_MTRR_DEF_TYPE, the fixed ranges when FIX = 1, VCNT variable pairs, the SMRR pair when SMRR = 1.',
    'Resolve the MTRR type of a physical address by the SDM\'s precedence: SMRR, E, the fixed ranges below 1 MiB, the variable ranges (UC wins, WT over WB, other overlaps undefined), the default type.',
    'Find where a 1-GByte or 2-MByte page covers more than one type, and split it to pages of one type.',
    'Write the MTRR type into each EPT leaf with "ignore PAT" clear, so a guest access gets the type it would get on bare metal.',
    'Select a PAT entry from a leaf\'s PAT, PCD and PWT bits (PAT at bit 7 of a PTE, bit 12 of a large page), and combine it with the EPT type by the effective-type table.',
    'Find why a guest\'s serial output goes missing under an EPT that maps everything WB, from the explanation of the device page\'s memory type, and fix the leaf that maps the device: the MTRR type, a split where the page holds several types, and the INVEPT without which the cached mapping keeps WB.',
  ],
  exercises: [
    {
      id: 'read-mtrrs',
      title: 'Read the MTRRs',
      file: 'read-mtrrs.ts',
      test: 'read-mtrrs.test.ts',
      points: 20,
      hints: [
        'IA32_MTRRCAP (FEH) says what exists: VCNT = bits 7:0 variable pairs, FIX = bit 8 the 11 fixed-range MTRRs, SMRR = bit 11 the SMRR pair. An MTRR it does not announce is an MSR the processor does not have: RDMSR raises #GP, which oopses your module. Read IA32_MTRRCAP first and let it decide every other read.',
        'IA32_MTRR_DEF_TYPE (2FFH): type = bits 7:0, FE = bit 10, E = bit 11. Pair n is IA32_MTRR_PHYSBASEn at MTRRphysBase_MSR(n) = 200H + 2n and IA32_MTRR_PHYSMASKn right after it. decodeVariablePair: base = physBase & bits, mask = physMask & bits with bits = ((1n << BigInt(maxPhysAddr)) - 1n) & ~0xfffn; type = Number(physBase & 0xffn); valid = bit 11 of physMask.',
        'Fixed ranges: for each r of FIXED_RANGE_MTRRS, value = rdmsr(r.msr); for field 0…7 push { base: r.base + field * r.step, size: r.step, type: byte field of value }. The SMRR pair (1F2H, 1F3H) decodes like a variable pair with 32 address bits: decodeVariablePair(base, mask, 32).',
      ],
    },
    {
      id: 'mtrr-type',
      title: 'The MTRR type of an address, and where a large page must split',
      file: 'mtrr-type.ts',
      test: 'mtrr-type.test.ts',
      points: 30,
      hints: [
        'Apply the rules in the processor\'s order and return at the first that decides: the SMRR (valid, pa below 4 GiB, (pa & mask) === (base & mask)) → UC; !enabled → UC; enabled, fixedEnabled, fixedSupported and pa < 100000H → the type of the fixed sub-range that holds pa; then the variable ranges.',
        'Variable ranges: collect the types of every valid pair that matches into a Set. Empty → defaultType; one type → it (identical overlaps are fine); has UC → UC; exactly {WT, WB} → WT; anything else → \'undefined\'. A WB pair in the list does not make the answer WB: do not drop it, and do not let it win.',
        'memoryTypeRuns(map, b, n): a page is uniform when every valid range (and the SMRR) holds all of it or none of it: none if (b ^ base) & mask has a bit at or above log2(n), i.e. ((b ^ r.base) & r.mask & ~(n - 1n)) !== 0n; all if additionally (r.mask & (n - 1n)) === 0n. Below 1 MiB with the fixed ranges on, never uniform above 4 KiB. Uniform or 4 KiB → one run of resolveMemoryType(map, b); else recurse on both halves and merge adjacent runs of the same type.',
      ],
    },
    {
      id: 'ept-memory-types',
      title: 'EPT with the MTRRs\' memory types',
      file: 'ept-memory-types.ts',
      test: 'ept-memory-types.test.ts',
      points: 30,
      hints: [
        'Under EPT the MTRRs are not consulted for guest accesses: leaf bits 5:3 are the type, so the leaf must say what the MTRRs say for its range — WB for RAM, UC for A0000–BFFFFH and the MMIO hole. Leave bit 6 ("ignore PAT") clear, so the guest\'s own UC mapping of a device still counts. Map the first 4 GiB (EPT_MAP_BYTES), not only RAM: the devices are above RAM.',
        'setIdentityLeaf is chapter 6\'s walk with a stop level: leafShift = 30n for 1 GByte, 21n for 2 MBytes, 12n for 4 KBytes; for shift from 39n down while shift > leafShift, allocate the missing table (allocEptTable, entry = virt_to_phys(next) | EPT_RWX) and follow entry & EPT_ADDRESS_MASK; then write gpa | EPT_RWX | eptMemoryTypeBits(type) | (pageSize === PAGE_4K ? 0n : EPT_PAGE_SIZE).',
        'buildMtrrIdentityMap: pageSize = largestEptPage(cap); for each page, runs = memoryTypeRuns(map, gpa, size): one run → setIdentityLeaf(…, size, runs[0].type); a 1-GByte page with several → each of its 2-MByte pages the same way; a 2-MByte page with several → a 4-KByte leaf for every page of every run. The part: readEptCapability, readMtrrs(v.cpu.rdmsr, maxPhysAddrOf(v)), buildMtrrIdentityMap(v.k, cap, mtrrs, max(EPT_MAP_BYTES, ramBytes)), eptpFromCapabilities, VMWRITE EPT_POINTER.',
      ],
    },
    {
      id: 'guest-pat',
      title: 'PAT: the type of a guest access under EPT',
      file: 'pat.ts',
      test: 'pat.test.ts',
      points: 20,
      hints: [
        'patIndex: 4·PAT + 2·PCD + PWT, with PWT = bit 3, PCD = bit 4 and PAT = bit 7 of a PTE but bit 12 of a PDE or PDPTE that maps a large page (bit 7 is PS there). patEntryType: Number((ia32Pat >> BigInt(8 * index)) & 0xffn).',
        'effectiveMemoryType is the SDM\'s table "Effective Page-Level Memory Types for Pentium III and More Recent Processor Families" as data: a row per MTRR type (UC, WC, WT, WP, WB), a column per PAT type (UC, UC-, WC, WT, WP, WB). PAT WC is WC on every row; PAT UC is UC; PAT WB leaves the row\'s type; UC- is UC except on the WC and WP rows, where it is WC.',
        'guestMemoryTypeOf: cr0Cd → UC. eptType = Number((eptLeaf >> 3n) & 7n); bit 6 of eptLeaf set → eptType. Else the PAT type: WB if guestLeaf is null (guest paging off), else patEntryType(guestPat, patIndex(entry, largePage)); return effectiveMemoryType(eptType, patType).',
      ],
    },
    {
      id: 'serial-output',
      title: 'The guest\'s serial output goes missing',
      file: 'serial-output.ts',
      test: 'serial-output.test.ts',
      points: 20,
      hints: [
        'Read the failure message before the code: "the device sees: almost nothing" and "EPT: memory type WB" in the explainDevicePage lines say the guest\'s stores sit in a dirty cache line; the MTRR lines below say the page is UC on bare metal. Under EPT only the leaf\'s bits 5:3 (and bit 6) decide, so the leaf that maps FEB00000H must say UC.',
        'fixMemoryType: walk as chapter 6 does (shift 39n, 30n, 21n, 12n; a leaf is a PTE, or an entry with bit 7 at 30n or 21n). At the leaf, runs = memoryTypeRuns(map, gpa & ~(size - 1n), size). One run: write (entry & ~(EPT_MEMORY_TYPE_MASK | EPT_IGNORE_PAT)) | eptMemoryTypeBits(runs[0].type) and return { ok: true, slot, pageSize: size, type }. Several: split — allocEptTable, entry i = (base + i * (size >> 9n)) | (entry & ~EPT_ADDRESS_MASK), with bit 7 cleared when the new entries are 4-KByte PTEs — point the slot at the new table with EPT_RWX, and go on down.',
        'The fix in serialFixPart: mtrrs = readMtrrs((msr) => v.cpu.rdmsr(msr), maxPhysAddrOf(v)); fixMemoryType for each of opts.devicePages ?? [MMIO_UART_GPA]; then invalidateEpt(v.cpu, cap, eptp). The VMCALL handler fixes v.cpu.readGpr(\'rbx\') the same way and must INVEPT too: the guest has used the page already, and its cached mapping keeps WB until INVEPT. Then SKIP.',
      ],
    },
  ],
};

export default chapter;
