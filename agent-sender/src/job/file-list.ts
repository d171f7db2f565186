/**
 * The files of one send, held compactly. A job may list 100,000 files and the agent keeps the list for
 * as long as the job runs: as objects with two absolute-path strings each that cost ~230 bytes per file
 * (23 MB live for 100,000, and V8 sizes the heap by a multiple of what is live). Here a file is the folder
 * it was found in (shared by its siblings), its name there and its size: ~55 bytes.
 * Each SourceFile is built when it is needed, for as long as its transfer or batch runs.
 */

/** One file to send. */
export interface SourceFile {
  /** Absolute local path. */
  file: string;
  /** Relative '/'-separated name on the receiver. */
  name: string;
  size: number;
}

/** What a job reads its files from: an array of SourceFile, or a FileList. */
export interface SourceList {
  readonly length: number;
  at(index: number): SourceFile | undefined;
}

/** A file's size without building the file (a FileList holds sizes apart from its names). */
export function sizeAt(list: SourceList, index: number): number {
  return list instanceof FileList ? list.sizeAt(index) : list.at(index)!.size;
}

/** A folder of the listing (absolute path, name on the receiver), or a file the user named directly. */
interface Place {
  file: string;
  name: string;
}

export class FileList implements SourceList, Iterable<SourceFile> {
  private readonly places: Place[] = [];
  private readonly placeOf: number[] = [];
  /** The file's name in its folder; '' when the place is the file itself. */
  private readonly bases: string[] = [];
  private readonly sizes: number[] = [];

  get length(): number {
    return this.bases.length;
  }

  /** Adds a folder, or a file named directly (then `add(place, '', size)`); returns its index. */
  addPlace(file: string, name: string): number {
    this.places.push({ file, name });
    return this.places.length - 1;
  }

  add(place: number, base: string, size: number): void {
    if (!(place >= 0 && place < this.places.length)) throw new RangeError(`no place ${place}`);
    this.placeOf.push(place);
    this.bases.push(base);
    this.sizes.push(size);
  }

  sizeAt(index: number): number {
    return this.sizes[index]!;
  }

  setSize(index: number, size: number): void {
    if (!(index >= 0 && index < this.sizes.length)) throw new RangeError(`no file ${index}`);
    this.sizes[index] = size;
  }

  at(index: number): SourceFile | undefined {
    if (!(index >= 0 && index < this.bases.length)) return undefined;
    const place = this.places[this.placeOf[index]!]!;
    const base = this.bases[index]!;
    const size = this.sizes[index]!;
    if (base === '') return { file: place.file, name: place.name, size };
    return { file: place.file.endsWith('/') ? place.file + base : `${place.file}/${base}`, name: `${place.name}/${base}`, size };
  }

  *[Symbol.iterator](): Iterator<SourceFile> {
    for (let i = 0; i < this.bases.length; i++) yield this.at(i)!;
  }
}
