import Search
import Testing

/// What each Slurm state means for a trial, and how squeue's lines read: no cluster needed.
@Suite struct SlurmJobStateTests {
    @Test func queuedAndRunningStatesAreNotEndings() {
        for state in ["PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "CONFIGURING", "pending"] {
            #expect(SlurmJobState(state: state, reason: "Resources", job: "5") == .active, "\(state)")
        }
    }

    @Test func theBatchScriptsEndIsReadFromItsExitStatus() {
        #expect(SlurmJobState(state: "COMPLETED", reason: "None", job: "5") == .scriptEnded)
        #expect(SlurmJobState(state: "FAILED", reason: "NonZeroExitCode", job: "5") == .scriptEnded)
        #expect(SlurmJobState.exit(status: 0) == .exited(0))
        #expect(SlurmJobState.exit(status: 3) == .exited(3))
        // bash reports a child killed by SIGTERM as 143.
        #expect(SlurmJobState.exit(status: 143) == .signaled(15))
    }

    @Test func slurmsOwnEndingsAreFailuresThatSayWhatToChange() {
        #expect(
            SlurmJobState(state: "TIMEOUT", reason: "TimeLimit", job: "7")
                == .failed("Slurm job 7 reached its time limit (TIMEOUT, reason TimeLimit); give trials more with --slurm-time"))
        #expect(
            SlurmJobState(state: "OUT_OF_MEMORY", reason: "None", job: "7")
                == .failed("Slurm job 7 ran out of memory (OUT_OF_MEMORY); give trials more with --slurm-mem"))
        // sacct writes who cancelled it after the state.
        #expect(
            SlurmJobState(state: "CANCELLED by 1000", reason: "", job: "7")
                == .failed("Slurm job 7 was cancelled outside the search (CANCELLED)"))
        #expect(SlurmJobState(state: "DEADLINE", reason: "", job: "7") == .failed("Slurm job 7 passed its deadline (DEADLINE)"))
        #expect(SlurmJobState(state: "WEIRD", reason: "", job: "7") == .failed("Slurm job 7 ended in state WEIRD"))
    }

    @Test func runsTheClusterLostRunAgain() {
        #expect(SlurmJobState(state: "PREEMPTED", reason: "None", job: "8") == .lost("Slurm job 8 PREEMPTED"))
        #expect(
            SlurmJobState(state: "NODE_FAIL", reason: "NodeDown", job: "8") == .lost("Slurm job 8 NODE_FAIL, reason NodeDown"))
        #expect(SlurmJobState(state: "BOOT_FAIL", reason: "", job: "8") == .lost("Slurm job 8 BOOT_FAIL"))
    }

    @Test func readsSqueueLines() {
        let output = """
            12|RUNNING|None|node01
            13|PENDING|Resources|
            14|COMPLETED|None|node02
            slurm_load_jobs error: something
            """
        let entries = SlurmQueueEntry.parse(output)
        #expect(entries.count == 3)
        #expect(entries["12"] == SlurmQueueEntry(job: "12", state: "RUNNING", reason: "None", nodes: "node01"))
        #expect(entries["13"] == SlurmQueueEntry(job: "13", state: "PENDING", reason: "Resources", nodes: ""))
        #expect(entries["14"]?.state == "COMPLETED")
    }

    @Test func optionsBecomeSbatchOptionsWithThePassThroughLast() {
        let options = SlurmOptions(
            partition: "gpu", time: "00:10:00", cpusPerTask: 4, memory: "8G", gres: "gpu:1",
            extraOptions: ["--account=lab", "--partition=other"])
        #expect(
            options.sbatchOptions == [
                "--partition=gpu", "--time=00:10:00", "--cpus-per-task=4", "--mem=8G", "--gres=gpu:1", "--account=lab",
                "--partition=other",
            ])
        #expect(SlurmOptions().sbatchOptions.isEmpty)
    }
}
