/** A file's text, imported with vite's `?raw` (unit tests that read source). */
declare module "*?raw" {
  const text: string;
  export default text;
}
