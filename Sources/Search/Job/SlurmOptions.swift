/// The Slurm resources and options of a job's trials, as the `--slurm-*` flags ask for them: kept in the job's
/// configuration, so that a resumed search submits its trials as the first run did.
public struct SlurmOptions: Codable, Hashable, Sendable {
    /// `--partition`: where the trials run; the cluster's default partition when nil.
    public var partition: String?
    /// `--time`: each trial's time limit (`MINUTES`, `HH:MM:SS`, `D-HH`...); the partition's default when nil.
    public var time: String?
    /// `--cpus-per-task`: CPUs for each trial.
    public var cpusPerTask: Int?
    /// `--mem`: memory for each trial (`4G`, `500M`).
    public var memory: String?
    /// `--gres`: generic resources for each trial (`gpu:1`).
    public var gres: String?
    /// Other `sbatch` options, passed as they are (`--account=lab`, `--qos=low`, `--constraint=avx512`).
    public var extraOptions: [String]
    /// Seconds between two queries of the queue, however often the job loop turns: a cluster's controller
    /// serves many users.
    public var pollInterval: Double

    /// Options; by default the cluster's defaults and a query of the queue every 2 seconds.
    public init(
        partition: String? = nil, time: String? = nil, cpusPerTask: Int? = nil, memory: String? = nil,
        gres: String? = nil, extraOptions: [String] = [], pollInterval: Double = 2
    ) {
        self.partition = partition
        self.time = time
        self.cpusPerTask = cpusPerTask
        self.memory = memory
        self.gres = gres
        self.extraOptions = extraOptions
        self.pollInterval = pollInterval
    }

    /// The `sbatch` options these ask for, the pass-through ones last (so that they win).
    public var sbatchOptions: [String] {
        var options: [String] = []
        if let partition { options.append("--partition=\(partition)") }
        if let time { options.append("--time=\(time)") }
        if let cpusPerTask { options.append("--cpus-per-task=\(cpusPerTask)") }
        if let memory { options.append("--mem=\(memory)") }
        if let gres { options.append("--gres=\(gres)") }
        return options + extraOptions
    }
}
