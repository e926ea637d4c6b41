# The job types, one home for the handheld (agent.main's console, agent.jobs, agent.event);
# tests/vectors/enums.json holds them equal to the bridge's and the bench's.
TYPES = ("install", "commission", "install_and_leave", "removal")


def job(w):
    # A job from its words: TYPE MPAN MPRN JOBREF INSTALLER ("-" for no MPAN or MPRN).
    return {"type": w[0], "mpans": [] if w[1] == "-" else [w[1]], "mprns": [] if w[2] == "-" else [w[2]],
            "job": w[3], "installer": w[4]}
