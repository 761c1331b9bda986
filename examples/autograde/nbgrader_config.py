"""nbgrader configuration for a course graded with the sandbox kernel (put it in the course root).

Every submission runs in the sandbox kernel named below, whatever kernel its notebook
metadata asks for; the sandbox's own limits and hidden paths come from the admin lock
file (sandbox_kernel_locks.json, named by SANDBOX_KERNEL_LOCKS or installed in
/etc/jupyter), which nothing in this file or in a submission can loosen.

Read README.md first: nbgrader decides pass or fail from the outputs of the test cells,
and those are produced by the student's own (sandboxed) interpreter. The sandbox keeps
a submission away from the gradebook, the hidden tests on disk, the other submissions
and the host, but a submission can still make a failing nbgrader test cell look passed
(an answer whose __eq__ always says True, a patched interpreter). grade.py grades in
the grader process instead and is not fooled that way.
"""

import os

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

# The kernelspec installed with:
#   python -m sandbox_kernel install --name sandbox-grader --preset classroom --sys-prefix
KERNEL = "sandbox-grader"

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "cs101"

# Pin the kernel. nbclient (under nbgrader's Execute) reads the notebook's
# metadata.kernelspec only when kernel_name is empty, and nbgrader's
# OverwriteKernelspec already replaces a submission's kernelspec with the one of the
# source notebook; with this setting neither matters.
c.Execute.kernel_name = KERNEL
# The grader's own backstop per cell, above the sandbox's Limits.wall_time_limit_s (the
# sandbox stops a cell first, with CellTimeout, and rolls the state back).
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120
# A test cell a student deleted (or stripped of its metadata) comes back from the
# gradebook instead of silently not counting.
c.OverwriteCells.add_missing_cells = True
# Keep what a submission prints into the autograded and feedback notebooks bounded.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 50
# Files the students may change and that are not replaced by the source versions.
c.Autograde.exclude_overwriting = {}
