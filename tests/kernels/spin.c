/* Never ends: only the instruction budget stops it. */
#include "lib.h"

volatile u32 counter;

int kmain(u32 magic, void *info) {
  (void)magic; (void)info;
  serial_init();
  puts("spinning\n");
  for (;;) counter++;
}
