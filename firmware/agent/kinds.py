# The job types, one home for the handheld (agent.main's console, agent.jobs, agent.event);
# tests/vectors/enums.json holds them equal to the bridge's and the bench's.
TYPES = ("install", "commission", "install_and_leave", "removal")
