/* adapt_cmd.h - `csasn adapt` (src/cli/adapt_cmd.c), dispatched by cli.c. */
#ifndef CSASN_CLI_ADAPT_CMD_H
#define CSASN_CLI_ADAPT_CMD_H

extern const char *csasn_cli_adapt_usage;

/* argv: the options after "adapt". Returns the exit status. */
int csasn_cli_adapt(int argc, char **argv);

#endif
