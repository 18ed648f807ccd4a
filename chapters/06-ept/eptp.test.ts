// Exercise 6.1 — EPT support and the EPTP. readEptCapability on every CPU model (the ones without EPT must be
// refused, saying why); eptpFromCapabilities against the SDM's rules for random capability values (fast-check, fixed
// seed), then on every model with EPT: the EPTP it builds is one VM entry accepts.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { eptpFromCapabilities, readEptCapability } from '#impl/06-ept/eptp';
import { bootHost, EPT_MODELS, EPTP_RULE, eptFacts, eptpRefusal, hex, NO_EPT_MODELS, show } from './support.ts';

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;

describe('readEptCapability', () => {
  test.each(EPT_MODELS.map((m) => [m]))('%s: EPT is there; the capability is IA32_VMX_EPT_VPID_CAP (48CH)', (model) => {
    const host = bootHost({ model });
    const cpu = host.kernel.cpu();
    const r = readEptCapability((msr) => cpu.rdmsr(msr));
    const want = eptFacts(host).cap;
    expect(r.ok, `${model} allows "enable EPT" (IA32_VMX_PROCBASED_CTLS bit 63 and IA32_VMX_PROCBASED_CTLS2 bit 33 are 1): expected { ok: true }, got ${show(r)}`).toBe(true);
    if (r.ok) expect(hex(r.cap), `cap should be the value of IA32_VMX_EPT_VPID_CAP (MSR 48CH), ${hex(want)}`).toBe(hex(want));
  });
  test.each(NO_EPT_MODELS.map((m) => [m]))('%s: no EPT — refused with a message that says so, without touching MSRs that do not exist', (model) => {
    const host = bootHost({ model });
    const cpu = host.kernel.cpu();
    let r: ReturnType<typeof readEptCapability> | null = null;
    let threw: unknown = null;
    try {
      r = readEptCapability((msr) => cpu.rdmsr(msr));
    } catch (e) {
      threw = e;
    }
    expect(threw === null ? null : String(threw), `${model} has no secondary controls (IA32_VMX_PROCBASED_CTLS bit 63 = 0): IA32_VMX_PROCBASED_CTLS2 (48BH) and IA32_VMX_EPT_VPID_CAP (48CH) do not exist and reading them raises #GP. Check bit 63 first.`).toBe(null);
    expect(r?.ok, `${model} has no EPT: expected { ok: false, error }, got ${show(r)}`).toBe(false);
    if (r !== null && !r.ok) expect(r.error, 'the error should say that there is no EPT and name the bit: "bit 63" of IA32_VMX_PROCBASED_CTLS or "bit 33" of IA32_VMX_PROCBASED_CTLS2').toMatch(/EPT[^]*bit (63|33)|bit (63|33)[^]*EPT/);
  });
});

/** The SDM's rules, written out independently: the EPTP, or the capability bit / address rule that is missing. */
function sdmEptp(cap: bigint, pml4: bigint, maxPhysAddr: number, ad: boolean): bigint | string {
  if (!bit(cap, 6)) return 'bit 6';
  const type = bit(cap, 14) ? 6n : bit(cap, 8) ? 0n : null;
  if (type === null) return 'bit 14';
  if (ad && !bit(cap, 21)) return 'bit 21';
  if ((pml4 & 0xfffn) !== 0n) return 'aligned';
  if (pml4 >> BigInt(maxPhysAddr) !== 0n) return 'MAXPHYADDR';
  return pml4 | type | (3n << 3n) | (ad ? 1n << 6n : 0n);
}

describe('eptpFromCapabilities', () => {
  const caps = fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))
    .map(([walk4, uc, wb, ad, noise]) => {
      let c = noise & ~((1n << 6n) | (1n << 8n) | (1n << 14n) | (1n << 21n));
      if (walk4) c |= 1n << 6n;
      if (uc) c |= 1n << 8n;
      if (wb) c |= 1n << 14n;
      if (ad) c |= 1n << 21n;
      return c;
    });
  const pml4s = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }).map((a) => a << 12n),
    fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }),
  );
  test('the memory type, walk length, A/D bit and address — or an error naming what is missing', () => {
    fc.assert(fc.property(caps, pml4s, fc.integer({ min: 36, max: 52 }), fc.boolean(), (cap, pml4, maxPhysAddr, ad) => {
      const want = sdmEptp(cap, pml4, maxPhysAddr, ad);
      const got = eptpFromCapabilities(cap, pml4, { maxPhysAddr, accessedDirty: ad });
      const what = `IA32_VMX_EPT_VPID_CAP ${hex(cap)} (bit 6 walk-4 ${bit(cap, 6) ? 1 : 0}, bit 8 UC ${bit(cap, 8) ? 1 : 0}, bit 14 WB ${bit(cap, 14) ? 1 : 0}, bit 21 A/D ${bit(cap, 21) ? 1 : 0}), PML4 ${hex(pml4)}, MAXPHYADDR ${maxPhysAddr}, A/D ${ad ? 'asked for' : 'not asked for'}`;
      if (typeof want === 'bigint') {
        expect(got.ok ? hex(got.eptp) : `error: ${got.error}`, `${what}: expected EPTP ${hex(want)}. ${EPTP_RULE}`).toBe(hex(want));
        if (got.ok) expect(got.memoryType, `${what}: memoryType is the name of bits 2:0`).toBe((want & 7n) === 6n ? 'WB' : 'UC');
      } else {
        expect(got.ok, `${what}: expected an error (${want === 'bit 21' ? 'A/D flags asked for without IA32_VMX_EPT_VPID_CAP[21]: silently dropping them hides it; setting bit 6 fails VM entry with error 7' : want === 'bit 14' ? 'no EPT paging-structure memory type: neither bit 14 (WB) nor bit 8 (UC)' : want === 'bit 6' ? 'no 4-level page walk: bit 6 is 0' : want === 'aligned' ? 'the PML4 address is not 4-KByte aligned' : 'the PML4 address is beyond MAXPHYADDR'}), got ${got.ok ? `EPTP ${hex(got.eptp)}` : 'ok'}`).toBe(false);
        if (!got.ok && want.startsWith('bit')) expect(got.error, `${what}: the error should name the missing capability, "${want}"`).toContain(want === 'bit 14' ? 'bit 14' : want);
      }
    }));
  });
  test('UC only when WB is not allowed (bit 14 = 0, bit 8 = 1): memory type 0', () => {
    const cap = (1n << 6n) | (1n << 8n);
    const r = eptpFromCapabilities(cap, 0x5000n, { maxPhysAddr: 39 });
    expect(r.ok ? hex(r.eptp) : r.error, `IA32_VMX_EPT_VPID_CAP ${hex(cap)} allows only UC for the EPT paging structures: EPTP = 5000H | 0 (UC) | 3 << 3 = 0x5018. WB here would fail VM entry with error 7`).toBe('0x5018');
  });

  test.each(EPT_MODELS.map((m) => [m]))('%s: the EPTP built from the model\'s capability is one VM entry accepts', (model) => {
    const host = bootHost({ model });
    const { cap, maxPhysAddr } = eptFacts(host);
    const pml4 = host.kernel.virt_to_phys(host.kernel.get_zeroed_page());
    for (const ad of [false, bit(cap, 21)]) {
      const r = eptpFromCapabilities(cap, pml4, { maxPhysAddr, accessedDirty: ad });
      expect(r.ok, `${model}, IA32_VMX_EPT_VPID_CAP ${hex(cap)}, A/D ${ad}: expected an EPTP, got ${show(r)}`).toBe(true);
      if (r.ok) expect(eptpRefusal(host, r.eptp), `${model}: EPTP ${hex(r.eptp)} — VM entry checks it against IA32_VMX_EPT_VPID_CAP ${hex(cap)}. ${EPTP_RULE}`).toBe(null);
    }
  });
});
