# Unit tests of server/budget.c: memory limits from cgroup trees, the plan, admission.
pyexec_unit_test(test_budget SOURCES test_budget.c LIBS pyexec_budget)
