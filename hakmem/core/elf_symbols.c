#include "elf_symbols.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "os.h"

static bool read_at(int fd, void *buf, size_t len, uint64_t off) {
  uint8_t *b = buf;
  while (len > 0) {
    ssize_t r = pread(fd, b, len, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    b += r;
    len -= (size_t)r;
    off += (uint64_t)r;
  }
  return true;
}

// Reads size bytes at off into fresh memory (*out, *mapped to unmap); false on failure.
static bool read_section(int fd, uint64_t off, uint64_t size, void **out, size_t *mapped) {
  size_t len = (size_t)((size + 4095) & ~(uint64_t)4095);
  if (len == 0 || size > ((uint64_t)1 << 32))
    return false;
  void *p = hak_os_reserve(len);
  if (p == NULL)
    return false;
  if (!read_at(fd, p, (size_t)size, off)) {
    hak_os_unreserve(p, len);
    return false;
  }
  *out = p;
  *mapped = len;
  return true;
}

bool hak_elf_symbols_open(hak_elf_symbols *t, const char *path_in, size_t path_len, uintptr_t start,
                          uint64_t offset) {
  char path[4096];
  if (path_len >= sizeof path)
    return false;
  memcpy(path, path_in, path_len);
  path[path_len] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  Elf64_Ehdr eh;
  Elf64_Shdr sh[256];
  Elf64_Phdr ph[64];
  if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shnum == 0 || eh.e_shnum > 256 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
      eh.e_phnum > 64 || !read_at(fd, sh, eh.e_shnum * sizeof sh[0], eh.e_shoff) ||
      !read_at(fd, ph, eh.e_phnum * sizeof ph[0], eh.e_phoff)) {
    close(fd);
    return false;
  }
  // The load segment this mapping's file offset lies in gives the bias
  // between file offsets and the symbols' addresses.
  int64_t bias = 0;
  bool found = false;
  for (unsigned i = 0; i < eh.e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && offset >= ph[i].p_offset &&
        offset < ph[i].p_offset + (ph[i].p_filesz ? ph[i].p_filesz : 1)) {
      bias = (int64_t)ph[i].p_vaddr - (int64_t)ph[i].p_offset;
      found = true;
      break;
    }
  int symi = -1;
  for (unsigned i = 0; i < eh.e_shnum; i++)
    if (sh[i].sh_type == SHT_SYMTAB)
      symi = (int)i;
  if (symi < 0)
    for (unsigned i = 0; i < eh.e_shnum; i++)
      if (sh[i].sh_type == SHT_DYNSYM)
        symi = (int)i;
  if (!found || symi < 0 || sh[symi].sh_link >= eh.e_shnum ||
      sh[symi].sh_entsize != sizeof(Elf64_Sym)) {
    close(fd);
    return false;
  }
  const Elf64_Shdr *st = &sh[sh[symi].sh_link];
  void *syms_raw = NULL, *strs_raw = NULL;
  size_t syms_len = 0, strs_len = 0;
  if (!read_section(fd, sh[symi].sh_offset, sh[symi].sh_size, &syms_raw, &syms_len) ||
      !read_section(fd, st->sh_offset, st->sh_size, &strs_raw, &strs_len)) {
    if (syms_raw != NULL)
      hak_os_unreserve(syms_raw, syms_len);
    close(fd);
    return false;
  }
  close(fd);
  t->syms = syms_raw;
  t->nsyms = sh[symi].sh_size / sizeof(Elf64_Sym);
  t->strs = strs_raw;
  t->strs_size = st->sh_size;
  t->syms_mapped = syms_len;
  t->strs_mapped = strs_len;
  t->bias = bias;
  t->start = start;
  t->offset = offset;
  return true;
}

const char *hak_elf_symbols_name(const hak_elf_symbols *t, uintptr_t pc, size_t *len) {
  const Elf64_Sym *syms = t->syms;
  uint64_t addr = (uint64_t)((int64_t)(pc - t->start + t->offset) + t->bias);
  const Elf64_Sym *best = NULL;
  for (size_t k = 0; k < t->nsyms; k++) {
    const Elf64_Sym *y = &syms[k];
    if (ELF64_ST_TYPE(y->st_info) != STT_FUNC || y->st_shndx == SHN_UNDEF ||
        y->st_name >= t->strs_size)
      continue;
    if (addr >= y->st_value && addr < y->st_value + (y->st_size ? y->st_size : 1) &&
        (best == NULL || y->st_value > best->st_value ||
         (y->st_value == best->st_value && ELF64_ST_BIND(y->st_info) == STB_GLOBAL)))
      best = y;
  }
  if (best == NULL)
    return NULL;
  const char *name = t->strs + best->st_name;
  *len = strnlen(name, t->strs_size - best->st_name);
  return name;
}

void hak_elf_symbols_close(hak_elf_symbols *t) {
  hak_os_unreserve((void *)t->syms, t->syms_mapped);
  hak_os_unreserve((void *)t->strs, t->strs_mapped);
}
