/* Runs the instructions gcc freestanding code needs that VMX Lab once refused: SHLD/SHRD (64-bit shifts in 32-bit
 * code), LOCK CMPXCHG8B (__sync on a u64), PUSHA/POPA, LAHF/SAHF, ENTER, REP BSF, FNINIT/FNSTCW/FLDCW/FNSTSW/FWAIT and,
 * where CPUID reports FXSR, FXSAVE/FXRSTOR. Prints one line per check; returns 0 when all pass, else the first
 * failing check's number. */
#include "lib.h"

static volatile u32 shift_counts[] = { 0, 1, 13, 31, 32, 33, 63 };
static volatile u64 shared = 0x1122334455667788ull;
static u8 fx_area[512] __attribute__((aligned(16)));

static int check(int n, const char *what, int ok) {
  puts(what);
  puts(ok ? " ok\n" : " FAILED\n");
  return ok ? 0 : n;
}

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  int bad = 0;
#define CHECK(n, what, cond) do { int r_ = check(n, what, cond); if (r_ && !bad) bad = r_; } while (0)

  /* 64-bit shifts by a variable count: gcc -m32 emits SHLD/SHRD (and a test of bit 5). */
  u64 v = 0x8000000180000001ull, left = 0, right = 0;
  for (u32 i = 0; i < sizeof shift_counts / sizeof shift_counts[0]; i++) {
    left ^= v << shift_counts[i];
    right ^= v >> shift_counts[i];
  }
  CHECK(1, "shld", left == 0x4000300100002003ull);
  CHECK(2, "shrd", right == 0xc0040000800c0002ull);

  CHECK(3, "lock cmpxchg8b (equal)", __sync_bool_compare_and_swap(&shared, 0x1122334455667788ull, 42ull) && shared == 42);
  CHECK(4, "lock cmpxchg8b (different)", !__sync_bool_compare_and_swap(&shared, 7ull, 9ull) && shared == 42);

  u32 a = 0x11111111, b = 0x22222222, c = 0x33333333, d = 0x44444444;
  __asm__ volatile("pusha; xorl %%eax, %%eax; xorl %%ebx, %%ebx; xorl %%ecx, %%ecx; xorl %%edx, %%edx; popa"
                   : "+a"(a), "+b"(b), "+c"(c), "+d"(d));
  CHECK(5, "pusha/popa", a == 0x11111111 && b == 0x22222222 && c == 0x33333333 && d == 0x44444444);

  u32 ah;
  __asm__ volatile("movb $0xd5, %%ah; sahf; movb $0, %%ah; lahf; movzbl %%ah, %0" : "=r"(ah) : : "eax", "cc");
  CHECK(6, "sahf/lahf", ah == 0xd7);

  /* ENTER 16, 0: push EBP, EBP = the new frame (old ESP - 4), ESP = EBP - 16; LEAVE undoes it. */
  u32 esp_before, ebp_in, esp_in;
  __asm__ volatile("movl %%esp, %%ecx; enter $16, $0; movl %%ebp, %%edx; movl %%esp, %%eax; leave"
                   : "=c"(esp_before), "=d"(ebp_in), "=a"(esp_in) : : "memory");
  CHECK(7, "enter/leave", ebp_in == esp_before - 4 && esp_in == esp_before - 20);

  u32 tz;
  __asm__("rep bsfl %1, %0" : "=r"(tz) : "r"(0x100u) : "cc");
  CHECK(8, "rep bsf", tz == 8);

  u16 cw = 0, sw = 0xffff;
  __asm__ volatile("fninit; fnstcw %0; fnstsw %%ax; movw %%ax, %1; fldcw %0; fwait" : "+m"(cw), "=m"(sw) : : "eax");
  CHECK(9, "fninit/fnstcw/fnstsw/fldcw/fwait", cw == 0x037f && sw == 0);

  u32 eax1 = 1, ebx1, ecx1, edx1;
  __asm__ volatile("cpuid" : "+a"(eax1), "=b"(ebx1), "=c"(ecx1), "=d"(edx1));
  if (edx1 & (1u << 24)) {
    __asm__ volatile("fxsave %0" : "=m"(fx_area));
    u16 saved_cw = (u16)(fx_area[0] | (fx_area[1] << 8));
    fx_area[0] = 0x7e; /* unmask nothing new: 037EH unmasks IE, with no exception pending */
    __asm__ volatile("fxrstor %1; fnstcw %0" : "=m"(cw) : "m"(fx_area) : "memory");
    CHECK(10, "fxsave/fxrstor", saved_cw == 0x037f && cw == 0x037e);
  } else {
    puts("fxsave skipped: no FXSR in CPUID\n");
  }
  return bad;
}
