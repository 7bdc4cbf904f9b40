/* The acceptor's environment and the little of it that passes on. The
 * service's environment may hold credentials; after the configuration is read
 * env_scrub wipes it, keeping only the pass-through variables, and the
 * template is exec'd with a fixed environment plus those (env_template). One
 * list, one copying loop for both. Runs in the acceptor: env_scrub from
 * main.c at start-up, env_template from template_ctl.c at each template
 * start. */
#ifndef PYEXEC_ENV_H
#define PYEXEC_ENV_H

/* Room env_template needs: the fixed variables, the pass-through ones, NULL. */
#define ENV_TEMPLATE_MAX 8
#define ENV_ENTRY_MAX    256 /* "NAME=value"; longer values are not passed on */

/* The variables (NULL-terminated names) the template inherits from the
 * acceptor's environment; it gets no other. */
extern const char *const env_passthrough[];

/* Keep only the pass-through variables (as fresh copies), wipe the original
 * strings (what /proc/<pid>/environ shows) and make the acceptor
 * non-dumpable, so no other uid can read its memory. */
void env_scrub(void);

/* The template's environment: env[] (ENV_TEMPLATE_MAX entries) points into
 * store; NULL-terminated. Returns the number of variables. */
int env_template(char **env, char store[][ENV_ENTRY_MAX]);

#endif
