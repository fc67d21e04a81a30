#pragma once
#include "types.h"
hak_block *hak_os_map(size_t n);
