# Unit tests of server/budget.c (memory limits from cgroup trees, the plan,
# admission), server/pool.c against a misbehaving template, common/priority.c.
pyexec_unit_test(test_budget SOURCES test_budget.c LIBS pyexec_budget)
# server/pool.c against fake_template, a template whose workers misbehave on purpose.
add_executable(fake_template fake_template.c)
target_link_libraries(fake_template PRIVATE pyexec_ipc)
pyexec_unit_test(test_pool SOURCES test_pool.c LIBS pyexec_pool)
add_dependencies(test_pool fake_template)
# common/priority.c: the child's priority step, CPU time and demotion, OOM kills.
pyexec_unit_test(test_priority SOURCES test_priority.c LIBS pyexec_priority)
