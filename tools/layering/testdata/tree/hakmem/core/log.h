#pragma once
void hak_log_write(const char *msg);
