// The function symbols of an ELF file mapped into the process, to name the
// frames of a heap profile: Go's own pprof (go tool pprof) names C functions
// from DWARF only, which release binaries rarely carry, so the profile names
// each frame itself, from the symbol table (.symtab, else .dynsym).
#ifndef HAKMEM_ELF_SYMBOLS_H
#define HAKMEM_ELF_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// A symbol table read into memory of its own (hak_os_reserve, not malloc).
typedef struct hak_elf_symbols {
  const void *syms; // Elf64_Sym[nsyms]
  size_t nsyms;
  const char *strs;   // the string table,
  uint64_t strs_size; // of this many bytes
  size_t syms_mapped, strs_mapped;
  int64_t bias;    // symbol address - file offset, in the mapping's segment
  uintptr_t start; // the mapping: its address
  uint64_t offset; // and its file offset
} hak_elf_symbols;

// Reads the symbols of the ELF file path (path_len bytes, not NUL-terminated)
// mapped at start from file offset `offset`; false when it cannot (not a
// 64-bit ELF file, no symbol table, the offset in no load segment).
bool hak_elf_symbols_open(hak_elf_symbols *t, const char *path, size_t path_len, uintptr_t start,
                          uint64_t offset) HAK_INTERNAL;

// The name of the function holding address pc of the mapping, *len bytes
// (not NUL-terminated); NULL if none holds it.
const char *hak_elf_symbols_name(const hak_elf_symbols *t, uintptr_t pc, size_t *len) HAK_INTERNAL;

// Gives the memory of hak_elf_symbols_open back.
void hak_elf_symbols_close(hak_elf_symbols *t) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_ELF_SYMBOLS_H
