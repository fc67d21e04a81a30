#include "slab.h"

#include <stdlib.h>

#include "os.h" /* direct: the slab maps its own guard pages */
#include "size_class.h"
#include "slab_internal.h"
#include "superslab.h"

// #include "hakmem.h" is in a comment and does not count
/* nor does
#include "api.h"
   in a block comment */
static const char *const note = "#include \"not_an_include.h\"";

hak_block *hak_slab_take(int cls) {
  (void)note;
  (void)hak_os_map;
  (void)hak_size_class_of;
  return (hak_block *)hak_superslab_new() + cls * HAK_SLAB_BATCH;
}
