/*
 * A gcc-compiled workload: the kind of code a freestanding kernel runs (a printf, CRC-32, sorting, a prime sieve, a
 * jump-table switch, 64-bit arithmetic, atomics, CPUID), with results printed and checked. It is the compiler's
 * choice of instructions, not a hand-written loop: the instruction mix the emulator must cover.
 */
#include "lib.h"

typedef __builtin_va_list va_list;
#define va_start(ap, last) __builtin_va_start(ap, last)
#define va_arg(ap, type) __builtin_va_arg(ap, type)
#define va_end(ap) __builtin_va_end(ap)

/* gcc may call these even with -ffreestanding. */
typedef __SIZE_TYPE__ size_t;
void *memset(void *d, int c, size_t n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
void *memcpy(void *d, const void *s, size_t n) { u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }

static void print_unsigned(u32 v, u32 base, int width, char pad) {
  char buf[32];
  int n = 0;
  do { u32 dgt = v % base; buf[n++] = (char)(dgt < 10 ? '0' + dgt : 'a' + dgt - 10); v /= base; } while (v != 0);
  while (n < width) buf[n++] = pad;
  while (n > 0) putc(buf[--n]);
}

static void kprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') { putc(*p); continue; }
    char pad = ' ';
    int width = 0;
    p++;
    if (*p == '0') { pad = '0'; p++; }
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    switch (*p) {
      case 'd': { int v = va_arg(ap, int); if (v < 0) { putc('-'); v = -v; } print_unsigned((u32)v, 10, width, pad); break; }
      case 'u': print_unsigned(va_arg(ap, u32), 10, width, pad); break;
      case 'x': print_unsigned(va_arg(ap, u32), 16, width, pad); break;
      case 'c': putc((char)va_arg(ap, int)); break;
      case 's': puts(va_arg(ap, const char *)); break;
      case '%': putc('%'); break;
      default: putc('?'); break;
    }
  }
  va_end(ap);
}

static u32 crc_table[256];

static void crc32_init(void) {
  for (u32 i = 0; i < 256; i++) {
    u32 c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static u32 crc32(const u8 *p, u32 n) {
  u32 c = 0xffffffffu;
  while (n--) c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

static u32 rng_state = 12345;
static u32 rng(void) { rng_state = rng_state * 1103515245u + 12345u; return rng_state >> 8; }

static void quicksort(int *a, int lo, int hi) {
  while (lo < hi) {
    int pivot = a[(lo + hi) / 2], i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { int t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (j - lo < hi - i) { quicksort(a, lo, j); lo = i; } else { quicksort(a, i, hi); hi = j; }
  }
}

#define N_SORT 2000
#define N_SIEVE 50000
static int values[N_SORT];
static u8 composite[N_SIEVE];

static const char *opname(int op) {
  switch (op) {
    case 0: return "add"; case 1: return "sub"; case 2: return "mul"; case 3: return "and";
    case 4: return "or"; case 5: return "xor"; case 6: return "shl"; case 7: return "rol";
    default: return "?";
  }
}

static u32 apply(int op, u32 a, u32 b) {
  switch (op) {
    case 0: return a + b; case 1: return a - b; case 2: return a * b; case 3: return a & b;
    case 4: return a | b; case 5: return a ^ b; case 6: return a << (b & 31);
    case 7: return (a << (b & 31)) | (a >> ((32 - (b & 31)) & 31));
    default: return 0;
  }
}

static volatile u32 shared;

/* "rounds=N" on the multiboot command line repeats the computations N times (for benchmarks); default 1. */
static u32 rounds_from_cmdline(const u32 *mbi) {
  if (!(mbi[0] & (1 << 2))) return 1;
  for (const char *p = (const char *)(unsigned long)mbi[4]; *p; p++) {
    if (p[0] == 'r' && p[1] == 'o' && p[2] == 'u' && p[3] == 'n' && p[4] == 'd' && p[5] == 's' && p[6] == '=') {
      u32 n = 0;
      for (p += 7; *p >= '0' && *p <= '9'; p++) n = n * 10 + (u32)(*p - '0');
      return n == 0 ? 1 : n;
    }
  }
  return 1;
}

int kmain(u32 magic, u32 *info) {
  serial_init();
  kprintf("workload: magic %x\n", magic);
  u32 rounds = rounds_from_cmdline(info);
  u32 crc = 0, primes = 0, acc = 0;
  int sorted = 0;
  u64 big = 0;
  for (u32 round = 0; round < rounds; round++) {
    rng_state = 12345;
    crc32_init();
    static const char text[] = "The quick brown fox jumps over the lazy dog";
    crc = crc32((const u8 *)text, sizeof text - 1);

    for (int i = 0; i < N_SORT; i++) values[i] = (int)(rng() % 100000) - 50000;
    quicksort(values, 0, N_SORT - 1);
    sorted = 1;
    for (int i = 1; i < N_SORT; i++) if (values[i - 1] > values[i]) sorted = 0;

    primes = 0;
    memset(composite, 0, sizeof composite);
    for (u32 i = 2; i < N_SIEVE; i++) {
      if (composite[i]) continue;
      primes++;
      for (u32 j = i * 2; j < N_SIEVE; j += i) composite[j] = 1;
    }

    acc = 0x9e3779b9u;
    for (int i = 0; i < 4000; i++) acc = apply(i & 7, acc, (u32)i * 2654435761u);

    big = 0;
    for (u32 i = 1; i <= 1000; i++) big += (u64)i * 0xfffffffbu;
  }
  kprintf("rounds %u\n", rounds);
  kprintf("crc32 %08x\n", crc);
  kprintf("sort %s min %d max %d\n", sorted ? "ok" : "BAD", values[0], values[N_SORT - 1]);
  kprintf("primes below %u: %u\n", N_SIEVE, primes);
  kprintf("ops %s..%s acc %08x\n", opname(0), opname(7), acc);
  kprintf("u64 sum hi %08x lo %08x\n", (u32)(big >> 32), (u32)big);

  kprintf("bits clz %u ctz %u bswap %08x\n", (u32)__builtin_clz(0x00f00000u), (u32)__builtin_ctz(0x00f00000u), __builtin_bswap32(0x11223344u));

  shared = 5;
  u32 old = __sync_fetch_and_add(&shared, 3);
  u32 was = __sync_val_compare_and_swap(&shared, 8, 42);
  kprintf("atomics %u %u %u\n", old, was, shared);

  u32 eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0), "c"(0));
  char vendor[13];
  memcpy(vendor, &ebx, 4); memcpy(vendor + 4, &edx, 4); memcpy(vendor + 8, &ecx, 4); vendor[12] = 0;
  kprintf("cpuid vendor %s\n", vendor);

  return sorted && primes == 5133 && crc == 0x414fa339u ? 0 : 1;
}
