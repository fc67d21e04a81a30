// Unit test of the ELF symbol reader: it names a function of the test binary
// from the file mapped at its address (its start and a point inside it), and
// refuses what is not an ELF file.
#include "hakmem/core/elf_symbols.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

extern "C" __attribute__((noinline)) int elf_symbols_test_function(int x) {
  volatile int y = x;
  for (int i = 0; i < 3; i++)
    y = y * 5 + i;
  return y;
}

namespace {

struct Mapping {
  uintptr_t start = 0, end = 0;
  uint64_t offset = 0;
  std::string path;
};

// The line of /proc/self/maps holding a, read with the standard library (not
// with the box under test).
Mapping MappingOf(uintptr_t a) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    Mapping m;
    std::string range, perms, dev, inode;
    in >> range >> perms >> std::hex >> m.offset >> dev >> inode >> m.path;
    size_t dash = range.find('-');
    m.start = std::stoull(range.substr(0, dash), nullptr, 16);
    m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (m.start <= a && a < m.end)
      return m;
  }
  return Mapping();
}

std::string Name(const hak_elf_symbols *t, uintptr_t pc) {
  size_t len = 0;
  const char *name = hak_elf_symbols_name(t, pc, &len);
  return name != nullptr ? std::string(name, len) : std::string("(none)");
}

TEST(ElfSymbols, NamesAFunctionOfTheTestBinary) {
  uintptr_t fn = reinterpret_cast<uintptr_t>(&elf_symbols_test_function);
  Mapping m = MappingOf(fn);
  ASSERT_FALSE(m.path.empty());
  hak_elf_symbols t;
  ASSERT_TRUE(hak_elf_symbols_open(&t, m.path.data(), m.path.size(), m.start, m.offset));
  EXPECT_EQ(Name(&t, fn), "elf_symbols_test_function");
  EXPECT_EQ(Name(&t, fn + 4), "elf_symbols_test_function");
  uintptr_t test_body = reinterpret_cast<uintptr_t>(&MappingOf);
  EXPECT_NE(Name(&t, test_body), "elf_symbols_test_function");
  hak_elf_symbols_close(&t);
}

TEST(ElfSymbols, RefusesWhatIsNotAnElfFile) {
  hak_elf_symbols t;
  const char maps[] = "/proc/self/maps";
  EXPECT_FALSE(hak_elf_symbols_open(&t, maps, strlen(maps), 0, 0));
  const char missing[] = "/nonexistent/elf_symbols_test";
  EXPECT_FALSE(hak_elf_symbols_open(&t, missing, strlen(missing), 0, 0));
  std::string long_path(5000, 'x');
  EXPECT_FALSE(hak_elf_symbols_open(&t, long_path.data(), long_path.size(), 0, 0));
}

TEST(ElfSymbols, RefusesAnOffsetInNoLoadSegment) {
  uintptr_t fn = reinterpret_cast<uintptr_t>(&elf_symbols_test_function);
  Mapping m = MappingOf(fn);
  ASSERT_FALSE(m.path.empty());
  hak_elf_symbols t;
  EXPECT_FALSE(hak_elf_symbols_open(&t, m.path.data(), m.path.size(), m.start, uint64_t{1} << 40));
}

} // namespace
