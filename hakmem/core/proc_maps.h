// The one reader of /proc/self/maps: open, read and close into the caller's
// buffer, so it allocates nothing and is async-signal-safe. The profiler
// lists the executable mappings with it, the foreign box finds the readable
// mapping holding an address.
#ifndef HAKMEM_PROC_MAPS_H
#define HAKMEM_PROC_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// One line: "start-end perms offset dev inode path".
typedef struct hak_proc_maps_entry {
  uintptr_t start, end; // [start, end)
  uint64_t offset;      // of the file, mapped at start
  bool readable, executable;
  const char *path; // not NUL-terminated, path_len bytes ("" for anonymous
  size_t path_len;  // memory); valid during the callback only
} hak_proc_maps_entry;

// Called for each line, in order; returns true to stop the reading.
typedef bool hak_proc_maps_fn(void *arg, const hak_proc_maps_entry *e);

// Reads /proc/self/maps through buf (cap bytes, at least 2) and calls fn for
// each line; a line longer than cap - 1 bytes is left out. True when fn
// stopped it; false at the end, or when the file cannot be opened.
bool hak_proc_maps_each(char *buf, size_t cap, hak_proc_maps_fn *fn, void *arg) HAK_INTERNAL;

// The readable mapping holding address a, [*lo, *hi), read through a 4 KiB
// stack buffer: false if there is none.
bool hak_proc_maps_find_readable(uintptr_t a, uintptr_t *lo, uintptr_t *hi) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PROC_MAPS_H
