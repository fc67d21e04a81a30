// C shim for os_test.cc: the OS box's functions as they are.
#include "os.h"

void *os_map(size_t size) { return hak_os_map(size); }
void *os_map_aligned(size_t size, size_t align) { return hak_os_map_aligned(size, align); }
void os_unmap(void *addr, size_t size) { hak_os_unmap(addr, size); }
void os_purge(void *addr, size_t size) { hak_os_purge(addr, size); }
int os_resize_in_place(void *addr, size_t old_size, size_t new_size) {
  return hak_os_resize_in_place(addr, old_size, new_size);
}
uint64_t os_now_ms(void) { return hak_os_now_ms(); }
