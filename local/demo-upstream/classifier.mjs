// @ts-check
/**
 * A small rule-based product classifier: the demo upstream for `npm start` and the benchmark.
 * Title and description in; a category path, a confidence and the matched keywords out.
 */

/** @type {Array<{ category: string, keywords: string[] }>} */
export const CATEGORIES = [
  {
    category: "Electronics > Audio",
    keywords: ["earbuds", "headphones", "speaker", "bluetooth", "soundbar", "microphone"],
  },
  {
    category: "Electronics > Computers",
    keywords: ["laptop", "notebook", "keyboard", "mouse", "monitor", "ssd", "usb"],
  },
  {
    category: "Electronics > Phones",
    keywords: ["phone", "smartphone", "iphone", "android", "charger", "case"],
  },
  {
    category: "Home > Kitchen",
    keywords: ["kettle", "pan", "knife", "blender", "mug", "toaster", "coffee"],
  },
  {
    category: "Home > Furniture",
    keywords: ["chair", "table", "sofa", "desk", "shelf", "bed", "lamp"],
  },
  { category: "Apparel > Shoes", keywords: ["sneakers", "shoes", "boots", "sandals", "running"] },
  {
    category: "Apparel > Clothing",
    keywords: ["shirt", "t-shirt", "jacket", "jeans", "dress", "hoodie", "cotton"],
  },
  {
    category: "Sports > Outdoor",
    keywords: ["tent", "backpack", "hiking", "bike", "bicycle", "camping"],
  },
  {
    category: "Beauty > Skincare",
    keywords: ["serum", "moisturizer", "cream", "sunscreen", "cleanser"],
  },
  { category: "Toys > Games", keywords: ["puzzle", "lego", "board game", "toy", "doll"] },
];

/**
 * @param {{ title?: unknown, description?: unknown }} input
 * @returns {{ category: string, confidence: number, matched: string[], alternatives: Array<{ category: string, score: number }> }}
 */
export function classify(input) {
  const text =
    `${typeof input.title === "string" ? input.title : ""} ${typeof input.description === "string" ? input.description : ""}`.toLowerCase();
  const scored = CATEGORIES.map((c) => {
    const matched = c.keywords.filter((k) => text.includes(k));
    return { category: c.category, matched, score: matched.length };
  }).sort((a, b) => b.score - a.score);
  const best = scored[0];
  if (!best || best.score === 0)
    return { category: "Uncategorized", confidence: 0.1, matched: [], alternatives: [] };
  const total = scored.reduce((sum, s) => sum + s.score, 0);
  return {
    category: best.category,
    // Share of keyword hits that went to the winner, in hundredths.
    confidence: Math.round((best.score / total) * 100) / 100,
    matched: best.matched,
    alternatives: scored
      .slice(1, 3)
      .filter((s) => s.score > 0)
      .map((s) => ({ category: s.category, score: s.score })),
  };
}
