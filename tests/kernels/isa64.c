/* The 64-bit side of isa.c: CMPXCHG16B, SHLD/SHRD on 64-bit registers (__int128 shifts), LAHF/SAHF, ENTER with a
 * nesting level, POPCNT, FXSAVE64/FXRSTOR64, and XSAVE/XRSTOR and LDMXCSR/STMXCSR after enabling them in CR4 and
 * XCR0 — each only where CPUID reports it, as a kernel must. Returns 0 when every check passes, else the first
 * failing check's number. */
#include "lib.h"

typedef unsigned long uptr;
typedef unsigned __int128 u128;

static volatile u32 counts[] = { 0, 1, 63, 64, 65, 127 };
static struct { u64 lo, hi; } pair __attribute__((aligned(16))) = { 1, 2 };
static u8 fx_area[512] __attribute__((aligned(16)));
static u8 xs_area[1024] __attribute__((aligned(64)));

static int bad;
static void check(int n, const char *what, int ok) {
  puts(what);
  puts(ok ? " ok\n" : " FAILED\n");
  if (!ok && !bad) bad = n;
}
static void skipped(const char *what) { puts(what); puts(" skipped: not in CPUID\n"); }
static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

int kmain(u32 magic, u32 *info) {
  (void)magic; (void)info;
  serial_init();
  u32 a, b, c1, d1, c8;
  cpuid(1, &a, &b, &c1, &d1);
  cpuid(0x80000001, &a, &b, &c8, &a);

  u128 v = ((u128)0x8000000000000001ull << 64) | 0x8000000000000001ull, left = 0, right = 0;
  for (u32 i = 0; i < sizeof counts / sizeof counts[0]; i++) { left ^= v << counts[i]; right ^= v >> counts[i]; }
  check(1, "shld/shrd (64-bit)", (u64)(left >> 64) == 0x4000000000000001ull && (u64)left == 0x3ull &&
        (u64)(right >> 64) == 0xc000000000000000ull && (u64)right == 0x8000000000000002ull);

  if (c1 & (1u << 13)) {
    u64 lo = 1, hi = 2; u8 ok;
    __asm__ volatile("lock cmpxchg16b %1; sete %0" : "=q"(ok), "+m"(pair), "+a"(lo), "+d"(hi) : "b"(10ull), "c"(20ull) : "memory", "cc");
    check(2, "lock cmpxchg16b", ok && pair.lo == 10 && pair.hi == 20);
  } else skipped("cmpxchg16b");

  if (c8 & 1u) {
    u64 ah;
    __asm__ volatile("movb $0x41, %%ah; sahf; movb $0, %%ah; lahf; shrl $8, %%eax; andl $0xff, %%eax" : "=a"(ah) : : "cc");
    check(3, "sahf/lahf (64-bit mode)", ah == 0x43);
  } else skipped("sahf/lahf");

  u64 rsp_before, rbp_in, rsp_in, link;
  __asm__ volatile("movq %%rsp, %%rcx; enter $32, $1; movq %%rbp, %%rdx; movq %%rsp, %%rax; movq -8(%%rbp), %%rsi; leave"
                   : "=c"(rsp_before), "=d"(rbp_in), "=a"(rsp_in), "=S"(link) : : "memory");
  check(4, "enter 32, 1", rbp_in == rsp_before - 8 && link == rbp_in && rsp_in == rsp_before - 16 - 32);

  if (c1 & (1u << 23)) {
    u64 n;
    __asm__("popcntq %1, %0" : "=r"(n) : "r"(0xf0f0000000000001ull) : "cc");
    check(5, "popcnt", n == 9);
  } else skipped("popcnt");

  u16 cw;
  __asm__ volatile("fninit; fnstcw %0" : "=m"(cw));
  if (d1 & (1u << 24)) {
    __asm__ volatile("fxsave64 %0" : "=m"(fx_area));
    check(6, "fxsave64", fx_area[0] == 0x7f && fx_area[1] == 0x03 && fx_area[24] == 0x80 && fx_area[25] == 0x1f);
    __asm__ volatile("fxrstor64 %0" : : "m"(fx_area));
  } else skipped("fxsave64");

  if ((c1 & (1u << 26)) && (d1 & (1u << 25))) {
    uptr cr4;
    __asm__ volatile("movq %%cr4, %0" : "=r"(cr4));
    cr4 |= (1u << 18) | (1u << 9); /* OSXSAVE, OSFXSR */
    __asm__ volatile("movq %0, %%cr4" : : "r"(cr4));
    __asm__ volatile("xsetbv" : : "a"(3), "d"(0), "c"(0)); /* XCR0 = x87 | SSE */
    u32 mx = 0x1f80 | 0x6000; /* round toward zero */
    __asm__ volatile("ldmxcsr %0" : : "m"(mx));
    __asm__ volatile("xsave64 %0" : "+m"(xs_area) : "a"(3), "d"(0) : "memory");
    u32 saved_mx = xs_area[24] | (xs_area[25] << 8);
    __asm__ volatile("xrstor64 %0" : : "m"(xs_area), "a"(3), "d"(0) : "memory");
    u32 back = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(back));
    check(7, "xsave64/xrstor64, ldmxcsr/stmxcsr", saved_mx == 0x7f80 && back == 0x7f80 && (xs_area[512] & 1) == 0);
  } else skipped("xsave");
  return bad;
}
