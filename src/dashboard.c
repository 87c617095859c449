#include "dashboard.h"

#include <string.h>

const struct embedded_file *dashboard_find(const char *path, size_t len)
{
    for (size_t i = 0; i < dashboard_files_count; i++) {
        const struct embedded_file *f = &dashboard_files[i];
        if (strlen(f->path) == len && memcmp(f->path, path, len) == 0) {
            return f;
        }
    }
    return NULL;
}
