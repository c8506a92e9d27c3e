#include "data/convert.h"
#include "data/source.h"
#include "data/source_util.h"
#include <stdlib.h>

int convert_prepare_out(const char *prefix, char *err, size_t errn) {
    if (!prefix || !*prefix) return src_seterr(err, errn, "no output prefix");
    char *dir = src_dirname(prefix);
    if (!dir) return src_seterr(err, errn, "out of memory");
    int rc = src_mkdirs(dir, err, errn);
    free(dir);
    return rc;
}

ShardWriter *convert_open_writer(const ConvertOpts *o, char *err, size_t errn) {
    if (convert_prepare_out(o->out_prefix, err, errn)) return NULL;
    ShardWriterOpts wo = {o->per_shard, o->max_bytes, o->overwrite, o->stop, o->publish, o->publish_ctx};
    return shard_writer_open_opts(o->out_prefix, &wo, err, errn);
}

int convert_key_width(long n) {
    int w = 1;
    for (long v = n > 0 ? n - 1 : 0; v >= 10; v /= 10) w++;
    return w < 6 ? 6 : w;
}
