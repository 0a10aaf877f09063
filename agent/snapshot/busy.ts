/** In-memory pins on snapshots a seed is reading; counted, so two readers need two unpins. */
export class BusySnapshots {
  private readonly counts = new Map<string, number>();

  mark(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }

  unmark(name: string): void {
    const n = (this.counts.get(name) ?? 0) - 1;
    if (n > 0) this.counts.set(name, n);
    else this.counts.delete(name);
  }

  has(name: string): boolean {
    return this.counts.has(name);
  }
}
