/* Prints what the loader handed over: the magic, the info flags, memory sizes, command line, memory map, modules, loader. */
#include "lib.h"

struct mb_info {
  u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  u32 syms[4];
  u32 mmap_length, mmap_addr;
  u32 drives_length, drives_addr, config_table, boot_loader_name;
};

struct mb_mmap {
  u32 size;
  u64 base;
  u64 length;
  u32 type;
} __attribute__((packed));

int kmain(u32 magic, struct mb_info *mbi) {
  serial_init();
  puts("magic "); put_hex(magic); putc('\n');
  if (magic != 0x2BADB002) return 1;
  puts("flags "); put_hex(mbi->flags); putc('\n');
  puts("mem_lower "); put_dec(mbi->mem_lower); puts(" KiB\n");
  puts("mem_upper "); put_dec(mbi->mem_upper); puts(" KiB\n");
  if (mbi->flags & (1 << 2)) { puts("cmdline '"); puts((const char *)mbi->cmdline); puts("'\n"); }
  if (mbi->flags & (1 << 6)) {
    u32 n = 0;
    u32 usable_kib = 0;
    for (u32 p = mbi->mmap_addr; p < mbi->mmap_addr + mbi->mmap_length; p += ((struct mb_mmap *)p)->size + 4) {
      struct mb_mmap *e = (struct mb_mmap *)p;
      puts("mmap "); put_hex64(e->base); putc(' '); put_hex64(e->length); putc(' '); put_dec(e->type); putc('\n');
      /* KiB from the two halves: a 64-bit shift would make gcc emit SHRD. */
      if (e->type == 1) usable_kib += ((u32)e->length >> 10) | ((u32)(e->length >> 32) << 22);
      n++;
    }
    puts("mmap entries "); put_dec(n); puts(", usable "); put_dec(usable_kib); puts(" KiB\n");
  }
  if (mbi->flags & (1 << 3)) {
    puts("mods "); put_dec(mbi->mods_count); putc('\n');
    for (u32 i = 0; i < mbi->mods_count; i++) {
      const u32 *m = (const u32 *)(mbi->mods_addr + 16 * i);
      const char *data = (const char *)m[0];
      puts("mod "); put_hex(m[0]); putc(' '); put_hex(m[1]); puts(" '"); puts((const char *)m[2]); puts("' starts '");
      for (u32 k = 0; k < 12 && m[0] + k < m[1] && data[k] >= ' '; k++) putc(data[k]);
      puts("'\n");
    }
  }
  if (mbi->flags & (1 << 9)) { puts("loader '"); puts((const char *)mbi->boot_loader_name); puts("'\n"); }
  return 0;
}
