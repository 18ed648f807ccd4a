/* The smallest test kernel: a line on COM1, then exit status (21 << 1) | 1 = 43. */
#include "lib.h"

int kmain(u32 magic, void *info) {
  (void)info;
  serial_init();
  puts("hello from a multiboot kernel\n");
  return magic == 0x2BADB002 ? 21 : 1;
}
