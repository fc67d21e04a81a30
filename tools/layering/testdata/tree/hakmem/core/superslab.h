#pragma once
#include "types.h"
hak_block *hak_superslab_new(void);
