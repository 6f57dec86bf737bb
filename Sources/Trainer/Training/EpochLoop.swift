import Dispatch

/// The epoch loop every built-in family trains with (the CNN and the MobileNet-style blocks): the per-epoch
/// reshuffle, the batches, the NaN check, the progress reports and the end-of-epoch hook. A family brings only
/// its gradient step, so that both give the same progress, the same intermediate results for early stopping and
/// the same errors.
struct EpochLoop {
    /// What the epochs produced, besides the weights the family's step kept updating.
    struct Outcome {
        /// Per epoch: the mean training loss.
        var epochLosses: [Double] = []
        /// Per epoch: the training accuracy.
        var epochAccuracies: [Double] = []
        /// The last epoch's order of the training examples.
        var order: [Int]
    }

    let config: TrainingConfig
    /// How many training examples there are.
    let count: Int

    /// Runs `config.epochs` epochs. `step` gets one batch (indices into the training data, in the epoch's
    /// order), updates the weights and returns the batch's summed loss and its correctly classified count.
    /// `epochEnded` is called after each epoch but the last with its number and order; what it throws ends the
    /// training.
    func run(
        progress: ((TrainingProgress) -> Void)?, epochEnded: ((_ epoch: Int, _ order: [Int]) throws -> Void)?,
        step: (UnsafeBufferPointer<Int>) throws -> (loss: Double, correct: Int)
    ) throws -> Outcome {
        var shuffler = SeededGenerator(seed: config.seed ^ 0x5DEE_CE66_D1CE_5EED)
        var outcome = Outcome(order: Array(0..<count))
        let batches = (count + config.batchSize - 1) / config.batchSize
        for epoch in 1...config.epochs {
            for index in stride(from: outcome.order.count - 1, to: 0, by: -1) {
                outcome.order.swapAt(index, shuffler.uniform(index + 1))
            }
            let epochStart = DispatchTime.now()
            var lossSum = 0.0
            var correct = 0
            var seen = 0
            for batch in 0..<batches {
                let lower = batch * config.batchSize
                let upper = min(lower + config.batchSize, count)
                let result = try outcome.order.withUnsafeBufferPointer {
                    try step(UnsafeBufferPointer(rebasing: $0[lower..<upper]))
                }
                let batchLoss = result.loss / Double(upper - lower)
                guard batchLoss.isFinite else {
                    throw TrainingError.nanLoss(epoch: epoch, batch: batch + 1, loss: batchLoss)
                }
                lossSum += batchLoss
                correct += result.correct
                seen += upper - lower
                if let progress, (batch + 1) % config.progressInterval == 0 || batch + 1 == batches {
                    progress(
                        TrainingProgress(
                            epoch: epoch, batch: batch + 1, batchesPerEpoch: batches,
                            loss: lossSum / Double(batch + 1), accuracy: Double(correct) / Double(seen),
                            imagesPerSecond: Double(seen) / Trainer.seconds(since: epochStart)))
                }
            }
            outcome.epochLosses.append(lossSum / Double(batches))
            outcome.epochAccuracies.append(Double(correct) / Double(seen))
            if let epochEnded, epoch < config.epochs { try epochEnded(epoch, outcome.order) }
        }
        return outcome
    }
}
