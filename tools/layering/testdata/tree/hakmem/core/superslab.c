#include "superslab.h"

#include "log.h"
#include "os.h"
hak_block *hak_superslab_new(void) { hak_log_write("superslab"); return hak_os_map(1 << 21); }
