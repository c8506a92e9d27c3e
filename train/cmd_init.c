/* placeholder until the command is implemented */
#include "train/commands.h"
#include <stdio.h>
int cmd_init(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mixtape: 'init' is not implemented yet\n");
    return 1;
}
