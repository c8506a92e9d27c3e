/* placeholder until the command is implemented */
#include "train/commands.h"
#include <stdio.h>
int cmd_eval(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mixtape: 'eval' is not implemented yet\n");
    return 1;
}
