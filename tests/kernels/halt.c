/* Stops for good without a word to isa-debug-exit: interrupts off, then HLT. */
#include "lib.h"

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  puts("halting\n");
  for (;;) __asm__ volatile("cli; hlt");
}
