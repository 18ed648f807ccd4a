/*
 * Finds the ACPI tables as an OS does: the RSDP on a 16-byte boundary in the BIOS area E0000H–FFFFFH, checksums
 * verified, then every table the XSDT (or RSDT) lists; the MADT's enabled local APICs are counted, its I/O APIC's
 * version register is read, and the FADT's DSDT is checked. Exits with the number of processors the MADT lists.
 */
#include "lib.h"

struct sdt {
  char signature[4];
  u32 length;
  u8 revision, checksum;
  char oem_id[6], oem_table_id[8];
  u32 oem_revision, creator_id, creator_revision;
} __attribute__((packed));

static int sum_ok(const void *p, u32 n) {
  u8 s = 0;
  for (u32 i = 0; i < n; i++) s = (u8)(s + ((const u8 *)p)[i]);
  return s == 0;
}

static int sig_is(const char *a, const char *b, int n) {
  for (int i = 0; i < n; i++) if (a[i] != b[i]) return 0;
  return 1;
}

static void put_n(const char *s, int n) { for (int i = 0; i < n; i++) putc(s[i]); }

static const u8 *find_rsdp(void) {
  for (u32 a = 0xe0000; a < 0x100000; a += 16)
    if (sig_is((const char *)a, "RSD PTR ", 8) && sum_ok((const void *)a, 20)) return (const u8 *)a;
  return 0;
}

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  const u8 *rsdp = find_rsdp();
  if (!rsdp) { puts("no RSDP\n"); return 100; }
  u8 rev = rsdp[15];
  puts("RSDP at "); put_hex((u32)rsdp); puts(" revision "); put_dec(rev); puts(" OEM '"); put_n((const char *)rsdp + 9, 6);
  puts("' extended checksum "); puts(rev >= 2 && sum_ok(rsdp, *(const u32 *)(rsdp + 20)) ? "ok" : "BAD"); putc('\n');
  const struct sdt *root = rev >= 2 ? (const struct sdt *)*(const u32 *)(rsdp + 24) : (const struct sdt *)*(const u32 *)(rsdp + 16);
  u32 width = rev >= 2 ? 8 : 4;
  puts("root "); put_n(root->signature, 4); puts(sum_ok(root, root->length) ? " ok\n" : " BAD\n");
  u32 lapics = 0;
  for (u32 off = sizeof(struct sdt); off < root->length; off += width) {
    const struct sdt *t = (const struct sdt *)*(const u32 *)((const u8 *)root + off);
    puts("table "); put_n(t->signature, 4); puts(" length "); put_dec(t->length); puts(" revision "); put_dec(t->revision);
    puts(sum_ok(t, t->length) ? " checksum ok\n" : " checksum BAD\n");
    if (sig_is(t->signature, "APIC", 4)) {
      const u8 *m = (const u8 *)t;
      puts("  local APIC address "); put_hex(*(const u32 *)(m + 36)); puts(" flags "); put_hex(*(const u32 *)(m + 40)); putc('\n');
      for (u32 e = 44; e < t->length; e += m[e + 1]) {
        if (m[e] == 0 && (*(const u32 *)(m + e + 4) & 1)) {
          puts("  CPU uid "); put_dec(m[e + 2]); puts(" APIC ID "); put_dec(m[e + 3]); putc('\n');
          lapics++;
        }
        if (m[e] == 1) {
          volatile u32 *io = (volatile u32 *)*(const u32 *)(m + e + 4);
          io[0] = 1; /* IOREGSEL = IOAPICVER */
          u32 ver = io[4];
          puts("  I/O APIC ID "); put_dec(m[e + 2]); puts(" at "); put_hex((u32)io); puts(" GSI base "); put_dec(*(const u32 *)(m + e + 8));
          puts(": version "); put_hex(ver & 0xff); puts(", "); put_dec(((ver >> 16) & 0xff) + 1); puts(" pins\n");
        }
        if (m[e] == 2) {
          puts("  ISA IRQ "); put_dec(m[e + 3]); puts(" -> GSI "); put_dec(*(const u32 *)(m + e + 4)); putc('\n');
        }
      }
    }
    if (sig_is(t->signature, "FACP", 4)) {
      const struct sdt *dsdt = (const struct sdt *)*(const u32 *)((const u8 *)t + 40);
      puts("  DSDT "); put_n(dsdt->signature, 4); puts(sum_ok(dsdt, dsdt->length) ? " ok" : " BAD");
      puts(", flags "); put_hex(*(const u32 *)((const u8 *)t + 112)); putc('\n');
    }
  }
  return (int)lapics;
}
