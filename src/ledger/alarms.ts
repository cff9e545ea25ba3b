/**
 * The object's one alarm: remembers the time last set so asking for a later time never pushes
 * an earlier alarm back, and no request writes an alarm that is already due by then (the hot
 * path compares in memory and writes nothing once an hour's checkpoint is set).
 */
export class AlarmClock {
  /** The alarm time we last set; null: none known (not loaded yet, or just fired). */
  private at: number | null = null;

  constructor(private readonly storage: DurableObjectStorage) {}

  /** Reads the stored alarm (once, in the constructor's `blockConcurrencyWhile`). */
  async load(): Promise<void> {
    this.at = await this.storage.getAlarm();
  }

  /** The alarm fired: none is set now. */
  fired(): void {
    this.at = null;
  }

  /** Asks for an alarm at `at`: kept only if it is earlier than the one set. */
  schedule(at: number | null): void {
    if (at === null || (this.at !== null && this.at <= at)) return;
    this.at = at;
    void this.storage.setAlarm(at);
  }
}
